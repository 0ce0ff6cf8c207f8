//! The worked example of the "Capacity estimation" page, as the book shows it.

use capacity::{Estimate, worked_example, worked_example_inputs_markdown, worked_example_markdown};
use expect_test::expect;

#[test]
fn worked_example_is_valid_and_labels_its_throughput_as_assumed() {
    let inputs = worked_example();
    assert!(Estimate::new(&inputs).is_ok());
    assert!(inputs.ops_per_core_source.contains("assumed"));
    assert!(worked_example_inputs_markdown().contains("assumed for illustration"));
}

#[test]
fn worked_example_estimate_table() {
    let table = match worked_example_markdown() {
        Ok(table) => table,
        Err(e) => panic!("worked example rejected: {e}"),
    };
    expect![[r#"
        | Quantity | Value | How |
        | --- | ---: | --- |
        | Average QPS, view photo | 17,361/s | DAU × operations per user per day ÷ 86,400 s |
        | Peak QPS, view photo | 52,083/s | average × peak factor |
        | Average QPS, upload photo | 116/s | DAU × operations per user per day ÷ 86,400 s |
        | Peak QPS, upload photo | 347/s | average × peak factor |
        | Read:write ratio | 150:1 | read QPS ÷ write QPS |
        | Average QPS, all operations | 17,477/s | sum over workloads |
        | Peak QPS, all operations | 52,431/s | average × peak factor |
        | Distinct items read per day | 150,000,000 | reads per day ÷ reads per item |
        | New data per day, one copy | 25.0 TB | writes per day × bytes stored per write |
        | New data per year, one copy | 9.12 PB | per day × 365 |
        | Storage after 5 years, 3 copies | 137 PB | per year × retention years × replication factor |
        | Ingress, average | 237 MB/s (1.89 Gbit/s) | QPS × request bytes, summed over workloads |
        | Ingress, peak | 710 MB/s (5.68 Gbit/s) | average × peak factor |
        | Egress, average | 3.47 GB/s (27.8 Gbit/s) | QPS × response bytes, summed over workloads |
        | Egress, peak | 10.4 GB/s (83.3 Gbit/s) | average × peak factor |
        | Cache memory | 30.0 GB | distinct items read per day × hot fraction × cache entry size |
        | Cores at peak | 53 | peak QPS ÷ (throughput per core × target utilisation), rounded up |
        | Machines | 2 | cores ÷ cores per machine, rounded up |
    "#]].assert_eq(&table);
}

#[test]
fn worked_example_inputs_table() {
    expect![[r#"
        | Input | Value | Meaning |
        | --- | ---: | --- |
        | Daily active users (DAU) | 50,000,000 | distinct users on a day |
        | view photo, per user per day | 30 | a read |
        | view photo, request / response | 300 B / 200 KB | bytes on the wire per operation |
        | view photo, reads per item | 10 | times an item read on a day is read that day |
        | upload photo, per user per day | 0.2 | a write |
        | upload photo, request / response | 2 MB / 300 B | bytes on the wire per operation |
        | upload photo, bytes stored | 2.5 MB | per operation, one copy |
        | Peak factor | 3 | busiest second ÷ daily average |
        | Retention | 5 years | how long stored data is kept |
        | Replication factor | 3 | copies of every stored byte |
        | Cache hot fraction | 20% | share of the distinct items read on a day kept in memory |
        | Cache entry size | 1 KB | key, value and overhead |
        | Throughput per core | 2,000/s | assumed for illustration, not measured |
        | Cores per machine | 32 | cores in one machine |
        | Target utilisation at peak | 50% | the rest is headroom |
    "#]]
    .assert_eq(&worked_example_inputs_markdown());
}
