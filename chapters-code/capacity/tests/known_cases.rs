//! Estimates checked against arithmetic done by hand.

use capacity::model::round_up;
use capacity::{Estimate, InputError, Inputs, Workload, units};

/// 100M DAU reading 10 times a day, with round numbers everywhere else.
fn reads_only() -> Inputs {
    Inputs {
        daily_active_users: 100_000_000,
        // Each item read on a day is read 10 times that day: 100M distinct items.
        workloads: vec![
            Workload::read("read", 10.0)
                .payload(500, 2_000)
                .reads_per_item(10.0),
        ],
        peak_factor: 3.0,
        retention_years: 5.0,
        replication: 3,
        cache_hot_fraction: 0.2,
        cache_entry_bytes: 1_000,
        ops_per_core: 5_000.0,
        ops_per_core_source: "test figure".to_owned(),
        cores_per_machine: 8,
        target_utilisation: 0.5,
    }
}

fn estimate(inputs: &Inputs) -> Estimate {
    match Estimate::new(inputs) {
        Ok(e) => e,
        Err(e) => panic!("valid inputs rejected: {e}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn hundred_million_users_reading_ten_times_a_day_is_11574_qps() {
    let e = estimate(&reads_only());
    // 100e6 * 10 / 86,400 = 11,574.07...
    assert!(close(e.total_qps.average, 1e9 / 86_400.0));
    assert_eq!(units::count(e.total_qps.average), "11,574");
    assert_eq!(units::qps(e.read_qps.average), "11,574/s");
}

#[test]
fn a_chapter_states_reads_and_writes_per_user_per_day() {
    // "100M DAU, 10 redirects and 0.1 creates per user per day".
    let inputs = Inputs {
        workloads: vec![
            Workload::read("redirect", 10.0).reads_per_item(10.0),
            Workload::write("create", 0.1).stores(500),
        ],
        ..reads_only()
    };
    let e = estimate(&inputs);
    assert_eq!(units::count(e.read_qps.average), "11,574");
    assert!(close(e.write_qps.average, 1e7 / 86_400.0));
    assert_eq!(
        units::ratio(e.read_qps.average, e.write_qps.average),
        "100:1"
    );
    assert!(close(
        e.total_qps.average,
        e.read_qps.average + e.write_qps.average
    ));
}

#[test]
fn peak_is_average_times_peak_factor() {
    let e = estimate(&reads_only());
    assert!(close(e.total_qps.peak, 3.0 * 1e9 / 86_400.0));
    assert_eq!(units::count(e.total_qps.peak), "34,722");
    assert!(close(e.workloads[0].qps.peak, e.total_qps.peak));
}

#[test]
fn five_years_of_storage_with_three_replicas() {
    let inputs = Inputs {
        daily_active_users: 10_000_000,
        workloads: vec![Workload::write("post", 0.1).stores(1_000)],
        ..reads_only()
    };
    let e = estimate(&inputs);
    // 10M x 0.1 = 1M writes a day x 1,000 B = 1 GB a day, one copy.
    assert!(close(e.stored_bytes_per_day, 1e9));
    assert!(close(e.stored_bytes_per_year, 365e9));
    // 365 GB x 5 years x 3 copies.
    assert!(close(e.retained_bytes, 5.475e12));
    assert_eq!(units::bytes(e.stored_bytes_per_year), "365 GB");
}

#[test]
fn reads_store_nothing() {
    let e = estimate(&reads_only());
    assert_eq!(e.retained_bytes, 0.0);
}

#[test]
fn cores_and_machines_follow_from_measured_throughput_per_core() {
    let e = estimate(&reads_only());
    // Peak 34,722.2/s over 5,000/s per core at 50% utilisation = 13.9 cores.
    assert_eq!(e.cores, 14);
    // 14 cores at 8 per machine.
    assert_eq!(e.machines, 2);
}

#[test]
fn doubling_measured_throughput_halves_the_cores() {
    let slow = estimate(&Inputs {
        ops_per_core: 1_000.0,
        ..reads_only()
    });
    let fast = estimate(&Inputs {
        ops_per_core: 2_000.0,
        ..reads_only()
    });
    // 34,722.2 / 500 = 69.4 and 34,722.2 / 1,000 = 34.7.
    assert_eq!((slow.cores, fast.cores), (70, 35));
}

#[test]
fn floating_point_noise_does_not_buy_an_extra_core() {
    let noisy = 0.1 * 3.0 * 10.0;
    assert!(noisy > 3.0, "0.1 * 3 is 0.30000000000000004 in binary");
    assert_eq!(round_up(noisy), 3);
    assert_eq!(round_up(3.2), 4);
    assert_eq!(round_up(0.0), 0);
    assert_eq!(round_up(1e-6), 1);
    assert_eq!(round_up(1e-12), 1, "any load needs a core");
}

// ANCHOR: cache_test
/// The cache holds items, not reads: 1e9 reads a day of items read 10 times
/// each are 1e8 items; 20% of them at 1,000 B is 20 GB. Counting one entry
/// per read, as the model did before, gave 200 GB for the same load.
#[test]
fn cache_holds_the_hot_fraction_of_the_distinct_items_read() {
    let e = estimate(&reads_only());
    assert!(close(e.distinct_items_per_day, 1e8));
    assert!(close(e.cache_bytes, 2e10));
    assert_eq!(units::bytes(e.cache_bytes), "20.0 GB");
    // The same reads spread over ten times as many items need ten times the cache.
    let spread = Inputs {
        workloads: vec![Workload::read("read", 10.0).reads_per_item(1.0)],
        ..reads_only()
    };
    assert!(close(estimate(&spread).cache_bytes, 2e11));
}
// ANCHOR_END: cache_test

/// A daily counter per item read (clicks per link per day) is storage too:
/// 1e8 items a day x 50 B = 5 GB a day, kept and replicated like any write.
#[test]
fn per_item_counters_are_stored_every_day() {
    let inputs = Inputs {
        workloads: vec![
            Workload::read("read", 10.0)
                .reads_per_item(10.0)
                .counter_bytes(50),
        ],
        ..reads_only()
    };
    let e = estimate(&inputs);
    assert!(close(e.counter_bytes_per_day, 5e9));
    assert!(close(e.stored_bytes_per_day, 5e9));
    assert!(close(e.retained_bytes, 5e9 * 365.0 * 5.0 * 3.0));
}

#[test]
fn sizing_by_item_without_saying_how_many_items_is_rejected() {
    let e = rejected(Inputs {
        workloads: vec![Workload::read("get", 1.0)],
        ..reads_only()
    });
    assert_eq!(e, InputError::DistinctItemsUnstated("get".to_owned()));
    // Without a cache or counters, nothing sizes by item, and nothing is needed.
    assert!(
        Estimate::new(&Inputs {
            workloads: vec![Workload::read("get", 1.0)],
            cache_hot_fraction: 0.0,
            ..reads_only()
        })
        .is_ok()
    );
    for value in [0.5, 0.0, f64::NAN] {
        let bad = rejected(Inputs {
            workloads: vec![Workload::read("get", 1.0).reads_per_item(value)],
            ..reads_only()
        });
        assert!(matches!(bad, InputError::BadReadsPerItem { .. }), "{bad}");
    }
    let write = rejected(Inputs {
        workloads: vec![Workload::write("put", 1.0).counter_bytes(8)],
        ..reads_only()
    });
    assert_eq!(write, InputError::WriteCountsItems("put".to_owned()));
}

#[test]
fn bandwidth_is_rate_times_payload() {
    let e = estimate(&reads_only());
    let qps = 1e9 / 86_400.0;
    assert!(close(e.ingress.average, qps * 500.0));
    assert!(close(e.egress.average, qps * 2_000.0));
    assert!(close(e.egress.peak, 3.0 * qps * 2_000.0));
    // 23.1 MB/s of responses is 185 Mbit/s: bytes times 8.
    assert_eq!(units::bandwidth(e.egress.average), "23.1 MB/s (185 Mbit/s)");
}

#[test]
fn no_load_needs_no_machines() {
    let inputs = Inputs {
        workloads: vec![Workload::read("idle", 0.0).reads_per_item(1.0)],
        ..reads_only()
    };
    let e = estimate(&inputs);
    assert_eq!((e.cores, e.machines), (0, 0));
}

fn rejected(inputs: Inputs) -> InputError {
    match Estimate::new(&inputs) {
        Ok(_) => panic!("bad inputs accepted: {inputs:?}"),
        Err(e) => e,
    }
}

#[test]
fn zero_users_is_rejected() {
    let e = rejected(Inputs {
        daily_active_users: 0,
        ..reads_only()
    });
    assert_eq!(e, InputError::NoUsers);
}

#[test]
fn an_empty_workload_list_is_rejected() {
    let e = rejected(Inputs {
        workloads: vec![],
        ..reads_only()
    });
    assert_eq!(e, InputError::NoWorkloads);
}

#[test]
fn workloads_need_distinct_names() {
    let unnamed = rejected(Inputs {
        workloads: vec![Workload::read(" ", 1.0)],
        ..reads_only()
    });
    assert_eq!(unnamed, InputError::UnnamedWorkload);
    let twice = vec![Workload::read("get", 1.0), Workload::write("get", 1.0)];
    let duplicate = rejected(Inputs {
        workloads: twice,
        ..reads_only()
    });
    assert_eq!(duplicate, InputError::DuplicateWorkload("get".to_owned()));
}

#[test]
fn negative_or_nan_rates_are_rejected() {
    for value in [-1.0, f64::NAN, f64::INFINITY] {
        let e = rejected(Inputs {
            workloads: vec![Workload::read("get", value)],
            ..reads_only()
        });
        assert!(
            matches!(e, InputError::BadRate { ref workload, .. } if workload == "get"),
            "{e}"
        );
    }
}

#[test]
fn a_read_that_stores_bytes_is_rejected() {
    let e = rejected(Inputs {
        workloads: vec![Workload::read("get", 1.0).stores(10)],
        ..reads_only()
    });
    assert_eq!(e, InputError::ReadStoresBytes("get".to_owned()));
}

#[test]
fn a_peak_below_the_average_is_rejected() {
    for factor in [0.0, 0.99, -2.0, f64::NAN, f64::INFINITY] {
        let e = rejected(Inputs {
            peak_factor: factor,
            ..reads_only()
        });
        assert!(
            matches!(e, InputError::PeakBelowAverage(_)),
            "{factor}: {e}"
        );
    }
}

#[test]
fn negative_retention_is_rejected() {
    let e = rejected(Inputs {
        retention_years: -1.0,
        ..reads_only()
    });
    assert!(matches!(e, InputError::BadRetention(_)));
}

#[test]
fn zero_replication_is_rejected() {
    let e = rejected(Inputs {
        replication: 0,
        ..reads_only()
    });
    assert_eq!(e, InputError::NoReplicas);
}

#[test]
fn a_hot_fraction_outside_zero_to_one_is_rejected() {
    for fraction in [-0.1, 1.01, f64::NAN] {
        let e = rejected(Inputs {
            cache_hot_fraction: fraction,
            ..reads_only()
        });
        assert!(
            matches!(e, InputError::HotFractionOutOfRange(_)),
            "{fraction}: {e}"
        );
    }
}

#[test]
fn non_positive_throughput_per_core_is_rejected() {
    for ops in [0.0, -5.0, f64::NAN, f64::INFINITY] {
        let e = rejected(Inputs {
            ops_per_core: ops,
            ..reads_only()
        });
        assert!(
            matches!(e, InputError::ThroughputNotPositive(_)),
            "{ops}: {e}"
        );
    }
}

#[test]
fn throughput_per_core_must_name_its_source() {
    let e = rejected(Inputs {
        ops_per_core_source: String::new(),
        ..reads_only()
    });
    assert_eq!(e, InputError::ThroughputUnsourced);
}

#[test]
fn zero_cores_per_machine_is_rejected() {
    let e = rejected(Inputs {
        cores_per_machine: 0,
        ..reads_only()
    });
    assert_eq!(e, InputError::NoCores);
}

#[test]
fn utilisation_outside_zero_to_one_is_rejected() {
    for u in [0.0, -0.5, 1.5, f64::NAN] {
        let e = rejected(Inputs {
            target_utilisation: u,
            ..reads_only()
        });
        assert!(
            matches!(e, InputError::UtilisationOutOfRange(_)),
            "{u}: {e}"
        );
    }
}

#[test]
fn absurd_inputs_are_too_large_rather_than_rounded() {
    let huge = Inputs {
        workloads: vec![Workload::read("get", 1e300).reads_per_item(1.0)],
        ..reads_only()
    };
    assert!(matches!(rejected(huge), InputError::TooLarge(_)));
    let tiny_core = Inputs {
        ops_per_core: 1e-12,
        ..reads_only()
    };
    assert_eq!(rejected(tiny_core), InputError::TooLarge("cores at peak"));
}

#[test]
fn utilisation_of_one_is_allowed() {
    let e = estimate(&Inputs {
        target_utilisation: 1.0,
        ..reads_only()
    });
    // 34,722.2 / 5,000 = 6.9 cores.
    assert_eq!(e.cores, 7);
}

/// Reads at 100 a day and writes at 1 a day, with round numbers.
fn reads_and_writes() -> Inputs {
    Inputs {
        daily_active_users: 8_640_000,
        workloads: vec![
            Workload::read("read", 100.0).reads_per_item(100.0),
            Workload::write("write", 1.0).stores(100),
        ],
        peak_factor: 1.0,
        ops_per_core: 1_000.0,
        ..reads_only()
    }
}

#[test]
fn each_workload_is_priced_at_its_own_measured_rate() {
    // 10,000 reads/s and 100 writes/s. At one rate of 1,000/s per core and
    // 50% utilisation: 10,100 / 500 = 20.2, so 21 cores.
    assert_eq!(estimate(&reads_and_writes()).cores, 21);
    // Reads served at 10,000/s per core take 10,000 / 5,000 = 2 cores;
    // writes at 100/s per core take 100 / 50 = 2 cores: 4 in all.
    let mut inputs = reads_and_writes();
    inputs.workloads[0] = inputs.workloads[0]
        .clone()
        .measured(10_000.0, "a read bench");
    inputs.workloads[1] = inputs.workloads[1].clone().measured(100.0, "a write bench");
    let e = estimate(&inputs);
    assert!(close(e.workloads[0].cores, 2.0), "{}", e.workloads[0].cores);
    assert!(close(e.workloads[1].cores, 2.0), "{}", e.workloads[1].cores);
    assert_eq!(e.cores, 4);
    // A workload without a rate of its own keeps the mix's: 2 + 100 / 500.
    let mut inputs = reads_and_writes();
    inputs.workloads[0] = inputs.workloads[0]
        .clone()
        .measured(10_000.0, "a read bench");
    let e = estimate(&inputs);
    assert!(close(e.workloads[1].cores, 0.2), "{}", e.workloads[1].cores);
    assert_eq!(e.cores, 3);
    let table = e.to_markdown();
    assert!(table.contains("| Cores at peak, read | 2 |"), "{table}");
    assert!(table.contains("sum of the workloads' cores"), "{table}");
    let inputs_table = inputs.to_markdown();
    assert!(
        inputs_table.contains("| read, throughput per core |"),
        "{inputs_table}"
    );
    assert!(
        inputs_table.contains("Throughput per core, other workloads"),
        "{inputs_table}"
    );
}

#[test]
fn a_workload_rate_must_be_positive_and_sourced() {
    for ops in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let mut inputs = reads_and_writes();
        inputs.workloads[1] = inputs.workloads[1].clone().measured(ops, "a bench");
        let e = rejected(inputs);
        assert!(
            matches!(e, InputError::WorkloadThroughputNotPositive { ref workload, .. } if workload == "write"),
            "{ops}: {e}"
        );
    }
    let mut inputs = reads_and_writes();
    inputs.workloads[1] = inputs.workloads[1].clone().measured(100.0, " ");
    assert_eq!(
        rejected(inputs),
        InputError::WorkloadThroughputUnsourced("write".to_owned())
    );
}
