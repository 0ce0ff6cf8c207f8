//! Every legal path compiles.
use order_management::domain::typestate::{OrderIn, Shipment};
use order_management::domain::{LineRequest, NewOrder, ShipLine};

fn main() {
    let request = NewOrder {
        customer_id: uuid::Uuid::nil(),
        lines: vec![LineRequest { sku: "A".into(), quantity: 2, unit_price_cents: 100 }],
    };
    let Ok(order) = OrderIn::new(uuid::Uuid::nil(), &request) else { return };
    let paid = order.place().approve();
    let shipped = match paid.ship(&[ShipLine { line: 1, quantity: 1 }]) {
        Ok(Shipment::Partial(p)) => p.ship_rest(),
        Ok(Shipment::Complete(s)) => s,
        Err(_) => return,
    };
    let _refunded = shipped.deliver().return_goods().refund();
}
