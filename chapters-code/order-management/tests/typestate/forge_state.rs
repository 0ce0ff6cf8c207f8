//! An `OrderIn<Paid>` cannot be made except by `approve`: its fields are private.
use order_management::domain::typestate::{OrderIn, Paid};

fn forge(order: order_management::domain::Order) -> OrderIn<Paid> {
    OrderIn { order, events: Vec::new(), _state: std::marker::PhantomData }
}

fn main() {}
