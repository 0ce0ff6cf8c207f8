//! A transition consumes the old state: the stale handle cannot be used again.
use order_management::domain::typestate::OrderIn;
use order_management::domain::{LineRequest, NewOrder};

fn main() {
    let request = NewOrder {
        customer_id: uuid::Uuid::nil(),
        lines: vec![LineRequest { sku: "A".into(), quantity: 1, unit_price_cents: 100 }],
    };
    let Ok(order) = OrderIn::new(uuid::Uuid::nil(), &request) else { return };
    let paid = order.place().approve();
    let _shipped = paid.ship_all();
    let _cancelled = paid.cancel("both at once");
}
