//! The order aggregate: parsed input, commands, events, and the two pure
//! functions every store uses: [`Order::decide`] (may this command happen,
//! and what event records it) and [`Order::evolve`] (the state after an
//! event). Folding an order's events with `evolve` gives back the order.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::state::{CommandKind, Guard, Refusal, State, next_state};

/// Most line items in one order.
pub const MAX_LINES: usize = 50;
/// Most units of one line item.
pub const MAX_QUANTITY: u32 = 1_000;
/// Highest unit price, in cents.
pub const MAX_UNIT_PRICE_CENTS: i64 = 10_000_000;
/// Longest SKU.
pub const MAX_SKU_LEN: usize = 64;

/// One line of an order as the client sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineRequest {
    /// The stock-keeping unit: 1 to 64 of `A-Z a-z 0-9 - _`.
    pub sku: String,
    /// Units, 1 to [`MAX_QUANTITY`].
    pub quantity: u32,
    /// Price per unit in cents, 0 to [`MAX_UNIT_PRICE_CENTS`].
    pub unit_price_cents: i64,
}

/// A new order as the client sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    /// Who orders.
    pub customer_id: Uuid,
    /// What, 1 to [`MAX_LINES`] lines, each SKU once.
    pub lines: Vec<LineRequest>,
}

/// Why a new order was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// No lines, or too many.
    #[error("an order has 1 to {MAX_LINES} lines, not {0}")]
    LineCount(usize),
    /// A SKU is empty, too long or has other characters.
    #[error("line {line}: a SKU is 1 to {MAX_SKU_LEN} characters of A-Z a-z 0-9 - _")]
    BadSku {
        /// The line (from 1).
        line: usize,
    },
    /// The same SKU on two lines.
    #[error("line {line}: SKU {sku:?} is already on another line")]
    DuplicateSku {
        /// The line (from 1).
        line: usize,
        /// The SKU.
        sku: String,
    },
    /// A quantity outside 1..=MAX_QUANTITY.
    #[error("line {line}: quantity must be 1 to {MAX_QUANTITY}")]
    BadQuantity {
        /// The line (from 1).
        line: usize,
    },
    /// A price outside 0..=MAX_UNIT_PRICE_CENTS.
    #[error("line {line}: unit price must be 0 to {MAX_UNIT_PRICE_CENTS} cents")]
    BadPrice {
        /// The line (from 1).
        line: usize,
    },
}

impl OrderError {
    /// A stable machine-readable name for the broken rule.
    pub fn reason(&self) -> &'static str {
        match self {
            OrderError::LineCount(_) => "line-count",
            OrderError::BadSku { .. } => "sku",
            OrderError::DuplicateSku { .. } => "duplicate-sku",
            OrderError::BadQuantity { .. } => "quantity",
            OrderError::BadPrice { .. } => "unit-price",
        }
    }
}

/// A line item of a stored order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The SKU.
    pub sku: String,
    /// Units ordered.
    pub quantity: u32,
    /// Price per unit in cents.
    pub unit_price_cents: i64,
    /// Units that left the warehouse so far.
    pub shipped: u32,
}

/// An order: its state, its version (one per event) and its money.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order's id.
    pub id: Uuid,
    /// Who ordered.
    pub customer_id: Uuid,
    /// Where the order is.
    pub state: State,
    /// How many events the order has; the optimistic-concurrency token.
    pub version: i64,
    /// The line items.
    pub lines: Vec<Line>,
    /// Sum of quantity x unit price, in cents.
    pub total_cents: i64,
    /// Captured by the saga.
    pub paid_cents: i64,
    /// Paid back.
    pub refunded_cents: i64,
}

/// Units of one line to ship.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShipLine {
    /// The line number, from 1.
    pub line: u32,
    /// Units, at least 1 and at most what is left on the line.
    pub quantity: u32,
}

// ANCHOR: command
/// A command with its data, as the API and the saga send it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Check out.
    Place,
    /// The saga captured `amount_cents` (saga only).
    Approve {
        /// What was captured.
        amount_cents: i64,
    },
    /// The card was declined (saga only).
    FailPayment {
        /// Why, for the customer.
        reason: String,
    },
    /// No stock (saga only).
    Reject {
        /// Why, for the customer.
        reason: String,
    },
    /// Ship these units.
    Ship {
        /// Which lines and how many units of each.
        lines: Vec<ShipLine>,
    },
    /// The carrier delivered.
    Deliver,
    /// Cancel.
    Cancel {
        /// Why.
        reason: String,
    },
    /// The goods came back.
    Return,
    /// Pay back what was paid.
    Refund,
}
// ANCHOR_END: command

// ANCHOR: event
/// A fact recorded in `order_events`; the payload is this, as JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The order was created (always version 1).
    Created {
        /// Who.
        customer_id: Uuid,
        /// What.
        lines: Vec<Line>,
    },
    /// Checkout started.
    Placed,
    /// The saga captured the payment.
    Approved {
        /// What was captured.
        amount_cents: i64,
    },
    /// The payment failed.
    PaymentFailed {
        /// Why.
        reason: String,
    },
    /// The saga failed before payment.
    Rejected {
        /// Why.
        reason: String,
    },
    /// Units left the warehouse.
    Shipped {
        /// Which.
        lines: Vec<ShipLine>,
    },
    /// Delivered.
    Delivered,
    /// Cancelled.
    Cancelled {
        /// Why.
        reason: String,
    },
    /// The goods came back.
    Returned,
    /// Money paid back.
    Refunded {
        /// How much.
        amount_cents: i64,
    },
}
// ANCHOR_END: event

/// Why a command was refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// The state machine refused it.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// A shipment names a line that does not exist, no units, or more than is left.
    #[error("invalid shipment: {0}")]
    InvalidShipment(String),
    /// A saga command with an impossible amount, or a text field too long.
    #[error("invalid command: {0}")]
    Invalid(String),
}

impl Command {
    /// The command's kind, the key into the transition table.
    pub fn kind(&self) -> CommandKind {
        match self {
            Command::Place => CommandKind::Place,
            Command::Approve { .. } => CommandKind::Approve,
            Command::FailPayment { .. } => CommandKind::FailPayment,
            Command::Reject { .. } => CommandKind::Reject,
            Command::Ship { .. } => CommandKind::Ship,
            Command::Deliver => CommandKind::Deliver,
            Command::Cancel { .. } => CommandKind::Cancel,
            Command::Return => CommandKind::Return,
            Command::Refund => CommandKind::Refund,
        }
    }
}

impl Event {
    /// The event's name in `order_events.kind` and in the outbox.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Created { .. } => "created",
            Event::Placed => "placed",
            Event::Approved { .. } => "approved",
            Event::PaymentFailed { .. } => "payment_failed",
            Event::Rejected { .. } => "rejected",
            Event::Shipped { .. } => "shipped",
            Event::Delivered => "delivered",
            Event::Cancelled { .. } => "cancelled",
            Event::Returned => "returned",
            Event::Refunded { .. } => "refunded",
        }
    }

    /// The command that this event records (none for `Created`).
    fn command_kind(&self) -> Option<CommandKind> {
        Some(match self {
            Event::Created { .. } => return None,
            Event::Placed => CommandKind::Place,
            Event::Approved { .. } => CommandKind::Approve,
            Event::PaymentFailed { .. } => CommandKind::FailPayment,
            Event::Rejected { .. } => CommandKind::Reject,
            Event::Shipped { .. } => CommandKind::Ship,
            Event::Delivered => CommandKind::Deliver,
            Event::Cancelled { .. } => CommandKind::Cancel,
            Event::Returned => CommandKind::Return,
            Event::Refunded { .. } => CommandKind::Refund,
        })
    }
}

/// Longest free-text reason.
pub const MAX_REASON_LEN: usize = 500;

fn valid_sku(s: &str) -> bool {
    (1..=MAX_SKU_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl NewOrder {
    /// Parses the request into the order's first event; every refusal is named.
    pub fn validate(&self) -> Result<Event, OrderError> {
        if !(1..=MAX_LINES).contains(&self.lines.len()) {
            return Err(OrderError::LineCount(self.lines.len()));
        }
        let mut lines: Vec<Line> = Vec::with_capacity(self.lines.len());
        for (i, l) in self.lines.iter().enumerate() {
            let line = i + 1;
            if !valid_sku(&l.sku) {
                return Err(OrderError::BadSku { line });
            }
            if lines.iter().any(|o| o.sku == l.sku) {
                return Err(OrderError::DuplicateSku {
                    line,
                    sku: l.sku.clone(),
                });
            }
            if !(1..=MAX_QUANTITY).contains(&l.quantity) {
                return Err(OrderError::BadQuantity { line });
            }
            if !(0..=MAX_UNIT_PRICE_CENTS).contains(&l.unit_price_cents) {
                return Err(OrderError::BadPrice { line });
            }
            lines.push(Line {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price_cents: l.unit_price_cents,
                shipped: 0,
            });
        }
        Ok(Event::Created {
            customer_id: self.customer_id,
            lines,
        })
    }
}

/// An event that does not fit the order it is folded into (a corrupt log).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {version} ({kind}) does not apply: {why}")]
pub struct FoldError {
    /// The version the event would have produced.
    pub version: i64,
    /// The event's kind.
    pub kind: &'static str,
    /// What was wrong.
    pub why: String,
}

impl Order {
    /// The order a `Created` event starts (version 1).
    pub fn from_created(id: Uuid, created: &Event) -> Result<Order, FoldError> {
        let Event::Created { customer_id, lines } = created else {
            return Err(FoldError {
                version: 1,
                kind: created.kind(),
                why: "the first event must be created".into(),
            });
        };
        let total_cents = lines
            .iter()
            .map(|l| i64::from(l.quantity) * l.unit_price_cents)
            .sum();
        Ok(Order {
            id,
            customer_id: *customer_id,
            state: State::Created,
            version: 1,
            lines: lines.clone(),
            total_cents,
            paid_cents: 0,
            refunded_cents: 0,
        })
    }

    /// Units still to ship, over all lines.
    pub fn units_left(&self) -> u64 {
        self.lines
            .iter()
            .map(|l| u64::from(l.quantity - l.shipped.min(l.quantity)))
            .sum()
    }

    /// A shipment of everything left on every line (line numbers from 1).
    pub fn everything_left(&self) -> Vec<ShipLine> {
        self.lines
            .iter()
            .zip(1..)
            .filter(|(l, _)| l.shipped < l.quantity)
            .map(|(l, line)| ShipLine {
                line,
                quantity: l.quantity - l.shipped,
            })
            .collect()
    }

    fn shipment_units(&self, ship: &[ShipLine]) -> u64 {
        ship.iter().map(|s| u64::from(s.quantity)).sum()
    }

    /// Whether `guard` holds for `command` on this order.
    fn holds(&self, guard: Guard, command: &Command) -> bool {
        let shipping = match command {
            Command::Ship { lines } => self.shipment_units(lines),
            _ => 0,
        };
        match guard {
            Guard::Always => true,
            Guard::ShipsTheRest => shipping == self.units_left(),
            Guard::LeavesSomeUnshipped => shipping < self.units_left(),
            Guard::WasPaid => self.paid_cents > 0 && self.refunded_cents == 0,
        }
    }

    fn check_shipment(&self, ship: &[ShipLine]) -> Result<(), CommandError> {
        let bad = |why: String| Err(CommandError::InvalidShipment(why));
        if ship.is_empty() {
            return bad("a shipment has at least one line".into());
        }
        for (i, s) in ship.iter().enumerate() {
            let Some(line) = usize::try_from(s.line)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| self.lines.get(n))
            else {
                return bad(format!("the order has no line {}", s.line));
            };
            if ship[..i].iter().any(|o| o.line == s.line) {
                return bad(format!("line {} appears twice", s.line));
            }
            if s.quantity == 0 {
                return bad(format!("line {}: ship at least one unit", s.line));
            }
            if s.quantity > line.quantity - line.shipped {
                return bad(format!(
                    "line {}: {} left to ship, not {}",
                    s.line,
                    line.quantity - line.shipped,
                    s.quantity
                ));
            }
        }
        Ok(())
    }

    // ANCHOR: decide
    /// Checks `command` against the table, its guards and its data, and
    /// returns the event that records it. Pure: the order is not changed.
    pub fn decide(&self, command: &Command) -> Result<Event, CommandError> {
        let reason_ok = |r: &str| {
            if r.len() > MAX_REASON_LEN {
                Err(CommandError::Invalid(format!(
                    "a reason is at most {MAX_REASON_LEN} bytes"
                )))
            } else {
                Ok(())
            }
        };
        // Data first: a malformed command is malformed in any state.
        match command {
            Command::Ship { lines } => self.check_shipment(lines)?,
            Command::Approve { amount_cents } if *amount_cents != self.total_cents => {
                return Err(CommandError::Invalid(format!(
                    "approve must capture the total, {} cents",
                    self.total_cents
                )));
            }
            Command::FailPayment { reason }
            | Command::Reject { reason }
            | Command::Cancel { reason } => reason_ok(reason)?,
            _ => {}
        }
        next_state(self.state, command.kind(), |g| self.holds(g, command))?;
        Ok(match command.clone() {
            Command::Place => Event::Placed,
            Command::Approve { amount_cents } => Event::Approved { amount_cents },
            Command::FailPayment { reason } => Event::PaymentFailed { reason },
            Command::Reject { reason } => Event::Rejected { reason },
            Command::Ship { lines } => Event::Shipped { lines },
            Command::Deliver => Event::Delivered,
            Command::Cancel { reason } => Event::Cancelled { reason },
            Command::Return => Event::Returned,
            Command::Refund => Event::Refunded {
                amount_cents: self.paid_cents,
            },
        })
    }
    // ANCHOR_END: decide

    // ANCHOR: evolve
    /// The order after `event`: the table gives the state, the event the data.
    /// Version goes up by one. An event that the table would refuse here is a
    /// corrupt log, reported, never applied.
    pub fn evolve(&mut self, event: &Event) -> Result<(), FoldError> {
        let version = self.version + 1;
        let fail = |why: String| FoldError {
            version,
            kind: event.kind(),
            why,
        };
        let Some(kind) = event.command_kind() else {
            return Err(fail("created can only be the first event".into()));
        };
        let shipping: u64 = match event {
            Event::Shipped { lines } => self.shipment_units(lines),
            _ => 0,
        };
        let left = self.units_left();
        let to = next_state(self.state, kind, |g| match g {
            Guard::Always => true,
            Guard::ShipsTheRest => shipping == left,
            Guard::LeavesSomeUnshipped => shipping < left,
            Guard::WasPaid => self.paid_cents > 0 && self.refunded_cents == 0,
        })
        .map_err(|e| fail(e.to_string()))?;
        match event {
            Event::Approved { amount_cents } => self.paid_cents = *amount_cents,
            Event::Refunded { amount_cents } => self.refunded_cents = *amount_cents,
            Event::Shipped { lines } => {
                self.check_shipment(lines)
                    .map_err(|e| fail(e.to_string()))?;
                for s in lines {
                    if let Some(line) = self.lines.get_mut(s.line as usize - 1) {
                        line.shipped += s.quantity;
                    }
                }
            }
            _ => {}
        }
        self.state = to;
        self.version = version;
        Ok(())
    }
    // ANCHOR_END: evolve

    // ANCHOR: fold
    /// Replays an order's events, oldest first: the order they describe.
    pub fn fold<'a>(
        id: Uuid,
        events: impl IntoIterator<Item = &'a Event>,
    ) -> Result<Order, FoldError> {
        let mut events = events.into_iter();
        let first = events.next().ok_or(FoldError {
            version: 1,
            kind: "none",
            why: "an order has at least its created event".into(),
        })?;
        let mut order = Order::from_created(id, first)?;
        for e in events {
            order.evolve(e)?;
        }
        Ok(order)
    }
    // ANCHOR_END: fold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(lines: &[(&str, u32, i64)]) -> Order {
        let new = NewOrder {
            customer_id: Uuid::nil(),
            lines: lines
                .iter()
                .map(|(s, q, p)| LineRequest {
                    sku: (*s).into(),
                    quantity: *q,
                    unit_price_cents: *p,
                })
                .collect(),
        };
        let created = new.validate().unwrap_or_else(|e| panic!("{e}"));
        Order::from_created(Uuid::nil(), &created).unwrap_or_else(|e| panic!("{e}"))
    }

    fn run(o: &mut Order, c: Command) -> Result<(), CommandError> {
        let e = o.decide(&c)?;
        o.evolve(&e).unwrap_or_else(|e| panic!("{e}"));
        Ok(())
    }

    fn paid(lines: &[(&str, u32, i64)]) -> Order {
        let mut o = order(lines);
        run(&mut o, Command::Place).unwrap_or_else(|e| panic!("{e}"));
        let amount_cents = o.total_cents;
        run(&mut o, Command::Approve { amount_cents }).unwrap_or_else(|e| panic!("{e}"));
        o
    }

    #[test]
    fn partial_shipments_end_in_shipped_when_nothing_is_left() {
        let mut o = paid(&[("A", 3, 100), ("B", 1, 50)]);
        run(&mut o, ship(&[(1, 2)])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.state, State::PartiallyShipped);
        run(&mut o, ship(&[(1, 1)])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.state, State::PartiallyShipped);
        run(&mut o, ship(&[(2, 1)])).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.state, State::Shipped);
        assert_eq!(o.version, 6);
    }

    fn ship(lines: &[(u32, u32)]) -> Command {
        Command::Ship {
            lines: lines
                .iter()
                .map(|(line, quantity)| ShipLine {
                    line: *line,
                    quantity: *quantity,
                })
                .collect(),
        }
    }

    #[test]
    fn overshipping_is_refused_and_changes_nothing() {
        let mut o = paid(&[("A", 3, 100)]);
        let before = o.clone();
        for bad in [ship(&[(1, 4)]), ship(&[(2, 1)]), ship(&[(1, 0)]), ship(&[])] {
            assert!(matches!(
                run(&mut o, bad),
                Err(CommandError::InvalidShipment(_))
            ));
        }
        assert!(matches!(
            run(&mut o, ship(&[(1, 1), (1, 1)])),
            Err(CommandError::InvalidShipment(_))
        ));
        assert_eq!(o, before);
    }

    #[test]
    fn a_cancelled_unpaid_order_cannot_be_refunded() {
        let mut o = order(&[("A", 1, 100)]);
        run(&mut o, Command::Cancel { reason: "".into() }).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(
            run(&mut o, Command::Refund),
            Err(CommandError::Refused(Refusal::GuardFailed { .. }))
        ));
        let mut p = paid(&[("A", 1, 100)]);
        run(&mut p, Command::Cancel { reason: "".into() }).unwrap_or_else(|e| panic!("{e}"));
        run(&mut p, Command::Refund).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((p.state, p.refunded_cents), (State::Refunded, 100));
    }

    #[test]
    fn bad_new_orders_are_named() {
        let mk = |lines: Vec<LineRequest>| NewOrder {
            customer_id: Uuid::nil(),
            lines,
        };
        let l = |sku: &str, quantity, unit_price_cents| LineRequest {
            sku: sku.into(),
            quantity,
            unit_price_cents,
        };
        assert_eq!(mk(vec![]).validate(), Err(OrderError::LineCount(0)));
        assert_eq!(
            mk(vec![l("a b", 1, 1)]).validate(),
            Err(OrderError::BadSku { line: 1 })
        );
        assert_eq!(
            mk(vec![l("a", 0, 1)]).validate(),
            Err(OrderError::BadQuantity { line: 1 })
        );
        assert_eq!(
            mk(vec![l("a", 1, -1)]).validate(),
            Err(OrderError::BadPrice { line: 1 })
        );
        assert!(matches!(
            mk(vec![l("a", 1, 1), l("a", 1, 1)]).validate(),
            Err(OrderError::DuplicateSku { line: 2, .. })
        ));
    }

    #[test]
    fn a_corrupt_log_is_an_error_not_a_state() {
        let created = order(&[("A", 1, 100)]);
        let events = [
            Event::Created {
                customer_id: created.customer_id,
                lines: created.lines.clone(),
            },
            Event::Delivered,
        ];
        assert!(Order::fold(Uuid::nil(), &events).is_err());
    }
}
