//! A labelled synthetic corpus from a seed: genuine reviews and four kinds
//! of fake. The point is not realism of the prose but that each kind
//! carries the signal a real one does (templated wording, a burst of new
//! accounts on one product, a ring of accounts praising each other's
//! products, copies with a word changed), so each tier can be measured on
//! what it is meant to catch, and on what it is not.

/// The kind of a review in the corpus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Written by a buyer about the product.
    Genuine,
    /// Filled in from a few fixed templates of praise.
    Templated,
    /// One of many 5-star reviews of one product within an hour, from new accounts.
    Burst,
    /// From a group of established accounts that review each other's products.
    Ring,
    /// A genuine-looking review copied with a word or two changed.
    Copy,
}

impl Kind {
    /// Every kind, genuine first.
    pub const ALL: [Kind; 5] = [
        Kind::Genuine,
        Kind::Templated,
        Kind::Burst,
        Kind::Ring,
        Kind::Copy,
    ];

    /// True for the fakes.
    pub fn is_fake(self) -> bool {
        self != Kind::Genuine
    }

    /// Its name in the tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Genuine => "genuine",
            Kind::Templated => "templated",
            Kind::Burst => "burst on one product",
            Kind::Ring => "review ring",
            Kind::Copy => "near-copy",
        }
    }
}

/// One labelled review.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The account.
    pub user: u32,
    /// Seconds since the account was created, at the review.
    pub account_age: i64,
    /// The product.
    pub product: u32,
    /// Stars.
    pub rating: u8,
    /// Seconds since the start of the corpus.
    pub at: i64,
    /// The text.
    pub text: String,
    /// The truth.
    pub kind: Kind,
}

// ANCHOR: sizes
/// The corpus the book's tables are computed from.
pub const SEED: u64 = 0x5EED_2011;
/// Genuine reviews.
pub const GENUINE: usize = 3000;
/// Templated fakes.
pub const TEMPLATED: usize = 300;
/// Bursts, and reviews per burst.
pub const BURSTS: usize = 12;
/// Reviews in each burst.
pub const PER_BURST: usize = 25;
/// Rings, accounts per ring (each reviews every other member's product).
pub const RINGS: usize = 10;
/// Accounts in each ring.
pub const RING_SIZE: usize = 8;
/// Near-copies.
pub const COPIES: usize = 200;
/// Products in the catalog.
pub const PRODUCTS: u32 = 400;
/// The corpus spans thirty days, in seconds.
pub const SPAN: i64 = 30 * 86_400;
// ANCHOR_END: sizes

/// SplitMix64: a small generator whose output never changes with a crate version.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// One of `items`.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

const PARTS: &[&str] = &[
    "battery", "screen", "strap", "zip", "handle", "lid", "cable", "sole", "fabric", "blade",
    "button", "motor", "hinge", "seal", "wheel", "charger", "buckle", "filter", "speaker", "lens",
];
const GOOD: &[&str] = &[
    "works as described",
    "holds up well",
    "is sturdier than I expected",
    "still works fine",
    "feels solid",
    "does the job",
    "is quiet",
    "lasts longer than my old one",
];
const BAD: &[&str] = &[
    "broke after a few days",
    "stopped working",
    "feels cheap",
    "squeaks",
    "came loose",
    "is smaller than the photo suggests",
    "runs hot",
    "leaks a little",
];
const WHEN: &[&str] = &[
    "after two weeks",
    "after a month",
    "on the first day",
    "after three trips",
    "since March",
    "after daily use",
    "over the winter",
    "after the first wash",
];
const WHO: &[&str] = &[
    "I bought it for my daughter",
    "we use it in the kitchen",
    "I take it to work",
    "my partner uses it most",
    "I replaced an older model with it",
    "it was a gift for my father",
    "I use it on the bike",
    "we took it camping",
];
const ASIDE: &[&str] = &[
    "Delivery took four days.",
    "The box was dented but nothing inside was.",
    "Instructions are thin.",
    "Price was fair for what it is.",
    "Customer service answered quickly.",
    "I would buy it again at this price.",
    "Colour is a bit darker than shown.",
    "",
];
/// Words of the one sentence each buyer writes in their own way.
const OWN: &[&str] = &[
    "morning",
    "garden",
    "kids",
    "dog",
    "office",
    "rain",
    "weekend",
    "holiday",
    "neighbour",
    "drawer",
    "shelf",
    "balcony",
    "train",
    "car",
    "boat",
    "tent",
    "school",
    "gym",
    "bathroom",
    "cellar",
    "attic",
    "friend",
    "brother",
    "sister",
    "uncle",
    "cousin",
    "colleague",
    "coffee",
    "tea",
    "soup",
    "bread",
    "pasta",
    "laundry",
    "ironing",
    "painting",
    "cycling",
    "running",
    "hiking",
    "fishing",
    "skiing",
    "swimming",
    "reading",
    "cooking",
    "baking",
    "cleaning",
    "repairs",
    "moving",
    "storage",
    "winter",
    "summer",
    "spring",
    "autumn",
    "night",
    "evening",
    "noon",
    "lunch",
    "dinner",
    "breakfast",
    "cupboard",
    "window",
    "door",
    "floor",
    "table",
    "chair",
    "sofa",
    "bed",
    "desk",
    "lamp",
    "fridge",
    "oven",
    "sink",
    "tap",
    "kettle",
    "toaster",
    "blender",
    "mixer",
    "drill",
    "saw",
    "hammer",
    "ladder",
    "bucket",
    "hose",
    "rake",
    "shovel",
    "pram",
    "crib",
    "toys",
    "puzzle",
    "guitar",
    "piano",
    "camera",
    "laptop",
    "phone",
    "tablet",
    "watch",
    "wallet",
    "backpack",
    "suitcase",
    "umbrella",
    "jacket",
    "boots",
    "gloves",
    "scarf",
    "hat",
    "mug",
    "plate",
    "bowl",
    "knife",
    "fork",
    "spoon",
    "pan",
    "pot",
    "tray",
    "jar",
];
const PRAISE: &[&str] = &[
    "Amazing product",
    "Best purchase ever",
    "Absolutely perfect",
    "Highly recommend",
    "Must buy",
    "Five stars",
    "Love it so much",
    "Excellent quality",
];
const HYPE: &[&str] = &[
    "exceeded all my expectations",
    "is the best on the market",
    "changed my life",
    "is worth every penny",
    "is simply amazing",
    "is top quality",
];

fn genuine_text(rng: &mut Rng, rating: u8) -> String {
    let part = rng.pick(PARTS);
    let verdict = if rating >= 4 {
        rng.pick(GOOD)
    } else if rating <= 2 {
        rng.pick(BAD)
    } else if rng.chance(0.5) {
        rng.pick(GOOD)
    } else {
        rng.pick(BAD)
    };
    let mut t = format!(
        "{}. The {part} {verdict} {}.",
        rng.pick(WHO),
        rng.pick(WHEN)
    );
    if rng.chance(0.6) {
        let other = rng.pick(PARTS);
        let v2 = if rng.chance(0.5) {
            rng.pick(GOOD)
        } else {
            rng.pick(BAD)
        };
        t.push_str(&format!(" The {other} {v2}."));
    }
    // The part no template writes: every buyer's own words about their use.
    let own: Vec<&str> = (0..5 + rng.below(6)).map(|_| rng.pick(OWN)).collect();
    t.push_str(&format!(" Mostly {}.", own.join(" ")));
    let aside = rng.pick(ASIDE);
    if !aside.is_empty() {
        t.push(' ');
        t.push_str(aside);
    }
    // Some genuine buyers write fakes' words too: the classifier's false positives.
    if rating == 5 && rng.chance(0.15) {
        t = format!("{}! {t}", rng.pick(PRAISE));
    }
    t
}

fn templated_text(rng: &mut Rng) -> String {
    format!(
        "{}!! This product {}. {}!",
        rng.pick(PRAISE),
        rng.pick(HYPE),
        rng.pick(PRAISE)
    )
}

fn burst_text(rng: &mut Rng) -> String {
    // Bursts mix praise with a genuine-looking sentence: harder for the text.
    format!(
        "{}. The {} {}.",
        rng.pick(PRAISE),
        rng.pick(PARTS),
        rng.pick(GOOD)
    )
}

fn genuine_rating(rng: &mut Rng) -> u8 {
    // Skewed positive, as real catalogs are.
    match rng.below(100) {
        0..=7 => 1,
        8..=14 => 2,
        15..=29 => 3,
        30..=59 => 4,
        _ => 5,
    }
}

/// The corpus of `seed`, in time order.
pub fn generate(seed: u64) -> Vec<Sample> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    let mut next_user = 0u32;
    let mut user = || {
        next_user += 1;
        next_user
    };
    for _ in 0..GENUINE {
        let rating = genuine_rating(&mut rng);
        out.push(Sample {
            user: user(),
            account_age: 30 * 86_400 + rng.below(700 * 86_400) as i64,
            product: rng.below(u64::from(PRODUCTS)) as u32,
            rating,
            at: rng.below(SPAN as u64) as i64,
            text: genuine_text(&mut rng, rating),
            kind: Kind::Genuine,
        });
    }
    for _ in 0..TEMPLATED {
        out.push(Sample {
            user: user(),
            account_age: rng.below(90 * 86_400) as i64,
            product: rng.below(u64::from(PRODUCTS)) as u32,
            rating: 5,
            at: rng.below(SPAN as u64) as i64,
            text: templated_text(&mut rng),
            kind: Kind::Templated,
        });
    }
    for _ in 0..BURSTS {
        let product = rng.below(u64::from(PRODUCTS)) as u32;
        let start = rng.below((SPAN - 3600) as u64) as i64;
        for _ in 0..PER_BURST {
            out.push(Sample {
                user: user(),
                account_age: rng.below(6 * 3600) as i64,
                product,
                rating: 5,
                at: start + rng.below(3600) as i64,
                text: burst_text(&mut rng),
                kind: Kind::Burst,
            });
        }
    }
    for _ in 0..RINGS {
        // A ring posts together, within half an hour: that is what it coordinates.
        let start = rng.below((SPAN - 1800) as u64) as i64;
        let members: Vec<(u32, u32)> = (0..RING_SIZE)
            .map(|_| (user(), rng.below(u64::from(PRODUCTS)) as u32))
            .collect();
        for &(reviewer, _) in &members {
            for &(owner, product) in &members {
                if owner == reviewer {
                    continue;
                }
                out.push(Sample {
                    user: reviewer,
                    account_age: 60 * 86_400 + rng.below(300 * 86_400) as i64,
                    product,
                    rating: 5,
                    at: start + rng.below(1800) as i64,
                    // Rings write like buyers: the text alone rarely gives them away.
                    text: genuine_text(&mut rng, 5),
                    kind: Kind::Ring,
                });
            }
        }
    }
    for _ in 0..COPIES {
        // The first GENUINE samples are the genuine ones (sorted only below).
        let from = &out[rng.below(GENUINE as u64) as usize];
        let mut words: Vec<String> = from.text.split(' ').map(str::to_owned).collect();
        let i = rng.below(words.len() as u64) as usize;
        words[i] = rng.pick(PARTS).to_owned();
        let text = words.join(" ");
        // A copy comes after its original, within three days.
        let at = (from.at + 1 + rng.below(3 * 86_400) as i64).min(SPAN - 1);
        out.push(Sample {
            user: user(),
            account_age: rng.below(20 * 86_400) as i64,
            product: rng.below(u64::from(PRODUCTS)) as u32,
            rating: 5,
            at,
            text,
            kind: Kind::Copy,
        });
    }
    // The account age is at the review's time; order by time for the rules.
    out.sort_by_key(|s| (s.at, s.user, s.product));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_the_same_for_the_same_seed_and_has_every_kind() {
        let a = generate(SEED);
        assert_eq!(a, generate(SEED));
        assert_ne!(a, generate(SEED + 1));
        for k in Kind::ALL {
            assert!(a.iter().any(|s| s.kind == k), "{k:?}");
        }
        assert!(a.windows(2).all(|w| w[0].at <= w[1].at));
    }
}
