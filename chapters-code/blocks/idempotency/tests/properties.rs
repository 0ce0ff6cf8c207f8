//! Properties of the pure part: parsing keys, the fingerprint's canonical
//! form, and the claim's decision.

use block_idempotency::fingerprint::canonical;
use block_idempotency::{
    ClaimError, Decision, Fingerprint, IdempotencyKey, KEY_MAX_LEN, KeyError, decide,
};
use proptest::prelude::*;

proptest! {
    /// Every string of 1 to 255 visible ASCII characters is a key, unchanged.
    #[test]
    fn visible_ascii_up_to_255_is_a_key(s in "[!-~]{1,255}") {
        let k = IdempotencyKey::parse(s.as_bytes()).expect("a valid key");
        prop_assert_eq!(k.as_str(), s.as_str());
    }

    /// Any byte outside visible ASCII is refused with `Character`, whatever surrounds it.
    #[test]
    fn a_byte_outside_visible_ascii_is_refused(
        before in "[!-~]{0,100}",
        bad in any::<u8>().prop_filter("not visible ASCII", |b| !(0x21..=0x7e).contains(b)),
        after in "[!-~]{0,100}",
    ) {
        let mut raw = before.into_bytes();
        raw.push(bad);
        raw.extend(after.into_bytes());
        prop_assert_eq!(IdempotencyKey::parse(&raw), Err(KeyError::Character));
    }

    /// Longer than 255 bytes is `TooLong`, checked before the characters.
    #[test]
    fn longer_than_255_is_too_long(raw in proptest::collection::vec(any::<u8>(), KEY_MAX_LEN + 1..600)) {
        prop_assert_eq!(IdempotencyKey::parse(&raw), Err(KeyError::TooLong));
    }

    /// The canonical form is injective: two different requests never share
    /// one, even when their fields concatenate to the same bytes.
    #[test]
    fn different_requests_have_different_canonical_forms(
        a in ("[A-Z]{0,6}", ".{0,12}", ".{0,8}", proptest::collection::vec(any::<u8>(), 0..24)),
        b in ("[A-Z]{0,6}", ".{0,12}", ".{0,8}", proptest::collection::vec(any::<u8>(), 0..24)),
    ) {
        let ca = canonical(&a.0, &a.1, &a.2, &a.3);
        let cb = canonical(&b.0, &b.1, &b.2, &b.3);
        prop_assert_eq!(a == b, ca == cb);
    }

    /// Moving bytes from one field to the next changes the fingerprint.
    #[test]
    fn shifting_a_field_boundary_changes_the_fingerprint(route in "/[a-z]{1,10}", account in "[a-z]{1,10}") {
        let shifted_route = format!("{route}{}", &account[..1]);
        let shifted_account = &account[1..];
        prop_assert_ne!(
            Fingerprint::of("POST", &route, &account, b"{}"),
            Fingerprint::of("POST", &shifted_route, shifted_account, b"{}")
        );
    }

    /// The fingerprint is 64 lowercase hex digits and reads back as itself.
    #[test]
    fn a_fingerprint_is_64_hex_digits(body in proptest::collection::vec(any::<u8>(), 0..64)) {
        let f = Fingerprint::of("POST", "/checkout", "alice", &body);
        prop_assert_eq!(Fingerprint::parse(f.as_str()), Some(f.clone()));
    }

    /// The decision: a mismatch is refused whatever the state; then finished
    /// replays; then held is in use; else the key is taken over.
    #[test]
    fn the_decision_follows_its_order(same in any::<bool>(), finished in any::<bool>(), held in any::<bool>()) {
        let asked = Fingerprint::of("POST", "/x", "a", b"1");
        let stored = if same { asked.clone() } else { Fingerprint::of("POST", "/x", "a", b"2") };
        let got = decide(stored.as_str(), &asked, finished, held);
        match (same, finished, held) {
            (false, _, _) => prop_assert!(matches!(got, Err(ClaimError::KeyReused))),
            (true, true, _) => prop_assert!(matches!(got, Ok(Decision::Replay))),
            (true, false, true) => prop_assert!(matches!(got, Err(ClaimError::KeyInUse))),
            (true, false, false) => prop_assert!(matches!(got, Ok(Decision::TakeOver))),
        }
    }
}

#[test]
fn each_refusal_has_its_name() {
    assert_eq!(IdempotencyKey::parse(b""), Err(KeyError::Empty));
    assert_eq!(IdempotencyKey::parse(b"a b"), Err(KeyError::Character));
    assert_eq!(
        IdempotencyKey::parse("é".as_bytes()),
        Err(KeyError::Character)
    );
    assert_eq!(IdempotencyKey::parse(&[b'k'; 256]), Err(KeyError::TooLong));
    assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
}

#[test]
fn json_fingerprints_split_the_endpoint_into_method_and_route() {
    let a = Fingerprint::of_json("POST /checkout", "alice", &serde_json::json!({"n": 1}))
        .expect("json");
    let b = Fingerprint::of("POST", "/checkout", "alice", br#"{"n":1}"#);
    assert_eq!(a, b);
}
