//! The behaviour suite on the in-memory adapter.

mod suite;

use block_idempotency::SharedMemoryKeys;

async fn memory() -> Option<((), SharedMemoryKeys)> {
    Some(((), SharedMemoryKeys::new()))
}

suite!(memory();
    one_key_many_concurrent_requests_run_once,
    a_takeover_fences_the_first_holder,
    a_purge_keeps_unfinished_keys,
    a_young_finished_key_is_not_purged,
    a_finished_key_replays_its_answer_and_refuses_another_request,
    a_held_key_is_in_use,
    keys_are_scoped_by_account_and_endpoint,
    a_released_key_is_taken_over_at_once,
);
