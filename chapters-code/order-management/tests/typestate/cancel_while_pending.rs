//! The semantic lock as a type: while the saga runs, there is no `cancel`.
use order_management::domain::typestate::OrderIn;
use order_management::domain::{LineRequest, NewOrder};

fn main() {
    let request = NewOrder {
        customer_id: uuid::Uuid::nil(),
        lines: vec![LineRequest { sku: "A".into(), quantity: 1, unit_price_cents: 100 }],
    };
    let Ok(order) = OrderIn::new(uuid::Uuid::nil(), &request) else { return };
    let _ = order.place().cancel("wait");
}
