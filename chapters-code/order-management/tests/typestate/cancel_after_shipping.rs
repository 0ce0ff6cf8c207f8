//! No cancel after shipping: `OrderIn<Shipped>` has no `cancel`.
use order_management::domain::typestate::OrderIn;
use order_management::domain::{LineRequest, NewOrder};

fn main() {
    let request = NewOrder {
        customer_id: uuid::Uuid::nil(),
        lines: vec![LineRequest { sku: "A".into(), quantity: 1, unit_price_cents: 100 }],
    };
    let Ok(order) = OrderIn::new(uuid::Uuid::nil(), &request) else { return };
    let shipped = order.place().approve().ship_all();
    let _ = shipped.cancel("too late");
}
