//! The offline claims of the chapter, on the seeded world.

use recommendations::candidates::Retriever;
use recommendations::candidates::two_tower::{TrainConfig, TwoTower, TwoTowerRetriever};
use recommendations::data::{Config, generate};
use recommendations::model::build;
use recommendations::offline::{evaluate, funnel};
use recommendations::vector::dot;

#[test]
fn two_tower_beats_popularity_on_recall() {
    let data = generate(Config::TINY);
    let model = build(&data, TrainConfig::BOOK, 1, 1);
    let tt = recommendations::model::exact_two_tower(&model, &data);
    let pop = evaluate(&data, &model.popularity, 10);
    let two = evaluate(&data, &tt, 10);
    assert!(two.recall > 1.5 * pop.recall, "{two:?} vs {pop:?}");
}

#[test]
fn log_q_correction_raises_two_tower_recall() {
    let data = generate(Config::TINY);
    let with = |log_q| {
        let (m, _) = TwoTower::train(
            &data,
            TrainConfig {
                log_q,
                ..TrainConfig::BOOK
            },
        );
        evaluate(&data, &TwoTowerRetriever::new(m, &data), 10).recall
    };
    let (on, off) = (with(true), with(false));
    assert!(on > off, "with log-Q {on}, without {off}");
}

#[test]
fn the_ranker_beats_the_retrieval_order_on_ndcg() {
    let data = generate(Config::TINY);
    let model = build(&data, TrainConfig::BOOK, 1, 1);
    let f = funnel(&data, &model, 10, &[1.0, 0.5]);
    assert!(f.ranked.1 > f.retrieval.1, "{f:?}");
}

#[test]
fn mmr_lowers_intra_list_similarity() {
    let data = generate(Config::TINY);
    let model = build(&data, TrainConfig::BOOK, 1, 1);
    let f = funnel(&data, &model, 10, &[1.0, 0.4]);
    assert!(f.mmr[1].ils < f.mmr[0].ils, "{f:?}");
}

#[test]
fn a_new_item_is_served_from_its_content_features() {
    // Cold start on the item side: an item with no ID embedding gets its
    // vector from content alone, and it lands nearer the users who like its
    // category than the users who do not.
    let data = generate(Config::TINY);
    let (model, _) = TwoTower::train(&data, TrainConfig::BOOK);
    let category = 0usize;
    let features = data
        .item_features
        .row(
            (0..data.config.items)
                .find(|&i| data.item_category[i] as usize == category)
                .expect("an item"),
        )
        .to_vec();
    let v = model.item_vector(None, &features);
    let (mut fans, mut others) = (Vec::new(), Vec::new());
    for u in 0..data.config.users {
        let h = data.history(u);
        let share = h
            .iter()
            .filter(|&&i| data.item_category[i as usize] as usize == category)
            .count() as f32
            / h.len() as f32;
        let s = dot(&model.user_vector(&h), &v);
        if share > 0.5 {
            fans.push(s)
        } else if share == 0.0 {
            others.push(s)
        }
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / v.len().max(1) as f32;
    assert!(!fans.is_empty() && !others.is_empty());
    assert!(
        mean(&fans) > mean(&others) + 0.2,
        "{} vs {}",
        mean(&fans),
        mean(&others)
    );
}

#[test]
fn retrievers_never_return_the_history() {
    let data = generate(Config::TINY);
    let model = build(&data, TrainConfig::BOOK, 1, 1);
    let tt = recommendations::model::exact_two_tower(&model, &data);
    for u in 0..20 {
        let h = data.history(u);
        for r in [
            &model.popularity as &dyn Retriever,
            &model.co_occurrence,
            &tt,
        ] {
            assert!(
                r.retrieve(&h, 50).iter().all(|s| !h.contains(&s.item)),
                "{}",
                r.name()
            );
        }
    }
}
