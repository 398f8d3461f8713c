//! Alert conditions and their evaluation over a stored result.
//!
//! A condition looks at the whole result, a batch at a time, so memory
//! stays bounded whatever its size: a row count; whether any, all or no
//! row has a column comparing with a value; or how a column's value in the
//! last row changed since the previous evaluation.
//!
//! Comparisons follow SQL: a NULL cell never satisfies one. A value that is
//! a number compares numerically (the column is read as numbers, cells that
//! are not numbers count as NULL); a string compares as text (the column's
//! cells cast to text, as Arrow writes them); `true`/`false`
//! compare with a boolean column. An empty result satisfies no `all`
//! condition.

use std::fmt;

use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, RecordBatch, Scalar};
use arrow::compute::kernels::cmp;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use loupe_core::deps::arrow;
use loupe_core::{Error, Result, codes};
use serde::{Deserialize, Serialize};

/// How a value compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    /// Equal.
    #[serde(rename = "=")]
    Eq,
    /// Not equal.
    #[serde(rename = "!=")]
    Ne,
    /// Less than.
    #[serde(rename = "<")]
    Lt,
    /// At most.
    #[serde(rename = "<=")]
    Le,
    /// Greater than.
    #[serde(rename = ">")]
    Gt,
    /// At least.
    #[serde(rename = ">=")]
    Ge,
}

impl Comparison {
    fn symbol(self) -> &'static str {
        match self {
            Self::Eq => "=",
            Self::Ne => "!=",
            Self::Lt => "<",
            Self::Le => "<=",
            Self::Gt => ">",
            Self::Ge => ">=",
        }
    }

    fn holds(self, left: f64, right: f64) -> bool {
        match self {
            Self::Eq => left == right,
            Self::Ne => left != right,
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
        }
    }

    fn apply(
        self,
        left: &dyn arrow::array::Datum,
        right: &dyn arrow::array::Datum,
    ) -> Result<BooleanArray> {
        let compared = match self {
            Self::Eq => cmp::eq(left, right),
            Self::Ne => cmp::neq(left, right),
            Self::Lt => cmp::lt(left, right),
            Self::Le => cmp::lt_eq(left, right),
            Self::Gt => cmp::gt(left, right),
            Self::Ge => cmp::gt_eq(left, right),
        };
        compared.map_err(|e| Error::internal_from("comparing a column", e))
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// Which rows must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantifier {
    /// At least one row.
    Any,
    /// Every row (and there is at least one).
    All,
    /// No row.
    None,
}

/// Which way a value moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// It is different (by more than `by`, for numbers).
    Changed,
    /// It went up (by more than `by`).
    Increased,
    /// It went down (by more than `by`).
    Decreased,
}

/// How much a value must move.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Threshold {
    /// By more than this amount.
    Amount(f64),
    /// By more than this percentage of the previous value.
    Percent(f64),
}

/// A literal a column is compared with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    /// Compared as a number.
    Number(f64),
    /// Compared as a boolean.
    Bool(bool),
    /// Compared as text.
    Text(String),
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Text(t) => write!(f, "{t:?}"),
        }
    }
}

/// What makes an alert trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// The number of rows compares with `value`.
    RowCount {
        /// How.
        op: Comparison,
        /// With what.
        value: f64,
    },
    /// Any, all or no row has `column` comparing with `value`.
    Rows {
        /// Which rows must match.
        quantifier: Quantifier,
        /// The column.
        column: String,
        /// How.
        op: Comparison,
        /// With what.
        value: Literal,
    },
    /// `column`'s value in the last row changed since the previous
    /// evaluation.
    Change {
        /// The column.
        column: String,
        /// Which way.
        change: Change,
        /// By at least how much (numbers only); any change without it.
        #[serde(default)]
        by: Option<Threshold>,
    },
}

impl Condition {
    /// The column the condition reads, if any.
    pub fn column(&self) -> Option<&str> {
        match self {
            Self::RowCount { .. } => None,
            Self::Rows { column, .. } | Self::Change { column, .. } => Some(column),
        }
    }

    /// Problems with the condition itself, before any result: (field,
    /// message).
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if let Some(column) = self.column()
            && column.trim().is_empty()
        {
            problems.push(("condition.column", "name a column".to_owned()));
        }
        match self {
            Self::RowCount { value, .. } if !value.is_finite() || *value < 0.0 => {
                problems.push((
                    "condition.value",
                    "a row count is a number of at least 0".to_owned(),
                ));
            }
            Self::Rows {
                value: Literal::Number(n),
                ..
            } if !n.is_finite() => {
                problems.push((
                    "condition.value",
                    "the value must be a finite number".to_owned(),
                ));
            }
            Self::Rows {
                value: Literal::Bool(_),
                op,
                ..
            } if !matches!(op, Comparison::Eq | Comparison::Ne) => {
                problems.push((
                    "condition.op",
                    "a boolean compares with = or != only".to_owned(),
                ));
            }
            Self::Change {
                by: Some(Threshold::Amount(n) | Threshold::Percent(n)),
                ..
            } if !n.is_finite() || *n < 0.0 => {
                problems.push((
                    "condition.by",
                    "a threshold is a number of at least 0".to_owned(),
                ));
            }
            _ => {}
        }
        problems
    }

    /// A sentence that says what the condition is.
    pub fn describe(&self) -> String {
        match self {
            Self::RowCount { op, value } => format!("the number of rows {op} {value}"),
            Self::Rows {
                quantifier,
                column,
                op,
                value,
            } => {
                let which = match quantifier {
                    Quantifier::Any => "any row",
                    Quantifier::All => "every row",
                    Quantifier::None => "no row",
                };
                format!("{which} has {column} {op} {value}")
            }
            Self::Change { column, change, by } => {
                let way = match change {
                    Change::Changed => "changed",
                    Change::Increased => "increased",
                    Change::Decreased => "decreased",
                };
                let by = match by {
                    Some(Threshold::Amount(n)) => format!(" by more than {n}"),
                    Some(Threshold::Percent(n)) => format!(" by more than {n}%"),
                    None => String::new(),
                };
                format!("{column} in the last row {way}{by} since the previous run")
            }
        }
    }
}

/// What an evaluation found.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Whether the condition holds.
    pub triggered: bool,
    /// The value that decided it: the row count, the number of matching
    /// rows, or the last row's value.
    pub value: serde_json::Value,
    /// A sentence about it, such as `3 of 120 rows have amount > 1000`.
    pub summary: String,
}

/// Evaluates a condition a batch at a time.
#[derive(Debug)]
pub struct Evaluator<'a> {
    condition: &'a Condition,
    previous: Option<&'a serde_json::Value>,
    rows: u64,
    matches: u64,
    first_match: Option<serde_json::Value>,
    last: Option<serde_json::Value>,
}

impl<'a> Evaluator<'a> {
    /// Starts evaluating `condition`; `previous` is the value the previous
    /// evaluation found (for `change`).
    pub fn new(condition: &'a Condition, previous: Option<&'a serde_json::Value>) -> Self {
        Self {
            condition,
            previous,
            rows: 0,
            matches: 0,
            first_match: None,
            last: None,
        }
    }

    /// Takes in the next batch of the result, in order.
    ///
    /// # Errors
    /// When the condition names a column the result does not have (the
    /// message lists the ones it has).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        self.rows += rows as u64;
        let Some(name) = self.condition.column() else {
            return Ok(());
        };
        let column = column(batch, name)?;
        match self.condition {
            Condition::RowCount { .. } => {}
            Condition::Rows { op, value, .. } => {
                let matched = compare(&column, *op, value)?;
                let count = matched.true_count();
                self.matches += count as u64;
                if self.first_match.is_none() && count > 0 {
                    let at = (0..matched.len())
                        .find(|&i| matched.is_valid(i) && matched.value(i))
                        .unwrap_or(0);
                    self.first_match = cell(&column.slice(at, 1))?;
                }
            }
            Condition::Change { .. } => {
                if rows > 0 {
                    self.last = cell(&column.slice(rows - 1, 1))?;
                }
            }
        }
        Ok(())
    }

    /// What the whole result says.
    pub fn finish(self) -> Evaluation {
        match self.condition {
            Condition::RowCount { op, value } => Evaluation {
                triggered: op.holds(self.rows as f64, *value),
                value: serde_json::json!(self.rows),
                summary: format!("the result has {} rows", self.rows),
            },
            Condition::Rows {
                quantifier,
                column,
                op,
                value,
            } => {
                let triggered = match quantifier {
                    Quantifier::Any => self.matches > 0,
                    Quantifier::All => self.rows > 0 && self.matches == self.rows,
                    Quantifier::None => self.matches == 0,
                };
                let example = match &self.first_match {
                    Some(v) => format!(" (the first: {v})"),
                    None => String::new(),
                };
                Evaluation {
                    triggered,
                    value: serde_json::json!(self.matches),
                    summary: format!(
                        "{} of {} rows have {column} {op} {value}{example}",
                        self.matches, self.rows
                    ),
                }
            }
            Condition::Change { column, change, by } => {
                let latest = self.last.unwrap_or(serde_json::Value::Null);
                let triggered = match self.previous {
                    Some(previous) if !previous.is_null() => moved(previous, &latest, *change, *by),
                    // The first value has nothing to change from.
                    _ => false,
                };
                let was = match self.previous {
                    Some(p) => format!(", was {p}"),
                    None => String::new(),
                };
                Evaluation {
                    triggered,
                    summary: format!("{column} in the last row is {latest}{was}"),
                    value: latest,
                }
            }
        }
    }
}

/// Whether `latest` moved from `previous` as the condition asks.
fn moved(
    previous: &serde_json::Value,
    latest: &serde_json::Value,
    change: Change,
    by: Option<Threshold>,
) -> bool {
    let (Some(before), Some(after)) = (number(previous), number(latest)) else {
        // Not numbers: only `changed` applies, as any difference.
        return change == Change::Changed && previous != latest;
    };
    let delta = after - before;
    let size = match by {
        None => 0.0,
        Some(Threshold::Amount(n)) => n,
        Some(Threshold::Percent(p)) => p / 100.0 * before.abs(),
    };
    let exceeds = |d: f64| match by {
        None => d > 0.0,
        Some(_) => d > size,
    };
    match change {
        Change::Changed => exceeds(delta.abs()),
        Change::Increased => exceeds(delta),
        Change::Decreased => exceeds(-delta),
    }
}

/// A JSON value as a number: numbers, and strings that hold one (decimals
/// are strings in Loupe's JSON, so that no digit is lost).
fn number(value: &serde_json::Value) -> Option<f64> {
    match value {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn column(batch: &RecordBatch, name: &str) -> Result<ArrayRef> {
    batch.column_by_name(name).cloned().ok_or_else(|| {
        let names: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        Error::invalid_input(
            codes::RESULTS_UNKNOWN_COLUMN,
            format!(
                "the alert's condition names the column {name:?}, which the result does not have; it has {}",
                names.join(", ")
            ),
        )
    })
}

/// Compares each cell of `column` with `value`; NULL where a cell cannot
/// be compared.
fn compare(column: &ArrayRef, op: Comparison, value: &Literal) -> Result<BooleanArray> {
    let safe = CastOptions {
        safe: true,
        ..CastOptions::default()
    };
    let cast = |to: &DataType| {
        cast_with_options(column, to, &safe).map_err(|e| {
            Error::invalid_input(
                codes::field::INVALID,
                format!(
                    "the alert compares a column of type {} with {value}, which cannot be done: {e}",
                    column.data_type()
                ),
            )
        })
    };
    match value {
        Literal::Number(n) => {
            let left = cast(&DataType::Float64)?;
            op.apply(&left, &Scalar::new(Float64Array::from(vec![*n])))
        }
        Literal::Bool(b) => {
            let left = cast(&DataType::Boolean)?;
            op.apply(&left, &Scalar::new(BooleanArray::from(vec![*b])))
        }
        Literal::Text(t) => {
            let text = cast(&DataType::Utf8)?;
            op.apply(
                &text,
                &Scalar::new(arrow::array::StringArray::from(vec![t.as_str()])),
            )
        }
    }
}

/// The one cell of `array` as JSON, in Loupe's JSON encoding.
fn cell(array: &ArrayRef) -> Result<Option<serde_json::Value>> {
    let field = arrow::datatypes::Field::new("v", array.data_type().clone(), true);
    let batch = RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(vec![field])),
        vec![array.clone()],
    )
    .map_err(|e| Error::internal_from("one cell", e))?;
    let rows = loupe_core::json_rows(&[batch])?;
    Ok(rows.into_iter().next().and_then(|r| r.into_iter().next()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn batch(amounts: &[Option<i64>], names: &[&str]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("amount", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(amounts.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn evaluate(
        condition: &Condition,
        batches: &[RecordBatch],
        previous: Option<serde_json::Value>,
    ) -> Evaluation {
        let mut e = Evaluator::new(condition, previous.as_ref());
        for b in batches {
            e.push(b).unwrap();
        }
        e.finish()
    }

    fn parse(json: serde_json::Value) -> Condition {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn row_counts_span_every_batch() {
        let c = parse(serde_json::json!({"kind": "row_count", "op": ">", "value": 3}));
        let two = batch(&[Some(1), Some(2)], &["a", "b"]);
        assert!(!evaluate(&c, std::slice::from_ref(&two), None).triggered);
        let e = evaluate(&c, &[two.clone(), two], None);
        assert!(e.triggered);
        assert_eq!(e.value, serde_json::json!(4));
    }

    #[test]
    fn any_all_and_none_look_past_the_first_row() {
        let b1 = batch(&[Some(1), Some(2)], &["a", "b"]);
        let b2 = batch(&[Some(50), None], &["c", "d"]);
        let rows = |q: &str| {
            parse(
                serde_json::json!({"kind": "rows", "quantifier": q, "column": "amount", "op": ">", "value": 10}),
            )
        };
        let any = evaluate(&rows("any"), &[b1.clone(), b2.clone()], None);
        assert!(any.triggered);
        assert!(any.summary.contains("1 of 4 rows"), "{}", any.summary);
        assert!(any.summary.contains("the first: 50"), "{}", any.summary);
        assert!(!evaluate(&rows("all"), &[b1.clone(), b2.clone()], None).triggered);
        assert!(!evaluate(&rows("none"), &[b1.clone(), b2.clone()], None).triggered);
        assert!(evaluate(&rows("none"), std::slice::from_ref(&b1), None).triggered);
        // NULL never satisfies a comparison, so not every row is > 0.
        let positive = parse(
            serde_json::json!({"kind": "rows", "quantifier": "all", "column": "amount", "op": ">", "value": 0}),
        );
        assert!(!evaluate(&positive, &[b1.clone(), b2], None).triggered);
        assert!(evaluate(&positive, &[b1], None).triggered);
        // An empty result satisfies no `all`.
        assert!(!evaluate(&positive, &[], None).triggered);
    }

    #[test]
    fn text_compares_as_text() {
        let b = batch(&[Some(1), Some(2)], &["ok", "error"]);
        let c = parse(
            serde_json::json!({"kind": "rows", "quantifier": "any", "column": "name", "op": "=", "value": "error"}),
        );
        assert!(evaluate(&c, std::slice::from_ref(&b), None).triggered);
        let c = parse(
            serde_json::json!({"kind": "rows", "quantifier": "any", "column": "amount", "op": "=", "value": "2"}),
        );
        assert!(evaluate(&c, &[b], None).triggered);
    }

    #[test]
    fn a_missing_column_names_the_ones_there_are() {
        let c = parse(
            serde_json::json!({"kind": "rows", "quantifier": "any", "column": "amout", "op": ">", "value": 1}),
        );
        let mut e = Evaluator::new(&c, None);
        let error = e.push(&batch(&[Some(1)], &["a"])).unwrap_err();
        assert!(error.to_string().contains("\"amout\""), "{error}");
        assert!(error.to_string().contains("amount, name"), "{error}");
    }

    #[test]
    fn changes_compare_the_last_row_with_the_previous_value() {
        let last_is = |v: i64| batch(&[Some(1), Some(v)], &["a", "b"]);
        let c = |change: &str, by: serde_json::Value| {
            parse(
                serde_json::json!({"kind": "change", "column": "amount", "change": change, "by": by}),
            )
        };
        let none = serde_json::Value::Null;
        // The first evaluation has nothing to compare with.
        let first = evaluate(&c("changed", none.clone()), &[last_is(10)], None);
        assert!(!first.triggered);
        assert_eq!(first.value, serde_json::json!(10));
        let prev = Some(serde_json::json!(10));
        assert!(evaluate(&c("changed", none.clone()), &[last_is(11)], prev.clone()).triggered);
        assert!(!evaluate(&c("changed", none.clone()), &[last_is(10)], prev.clone()).triggered);
        assert!(evaluate(&c("increased", none.clone()), &[last_is(11)], prev.clone()).triggered);
        assert!(!evaluate(&c("decreased", none.clone()), &[last_is(11)], prev.clone()).triggered);
        assert!(evaluate(&c("decreased", none), &[last_is(9)], prev.clone()).triggered);
        let by5 = serde_json::json!({"amount": 5});
        assert!(!evaluate(&c("increased", by5.clone()), &[last_is(15)], prev.clone()).triggered);
        assert!(evaluate(&c("increased", by5), &[last_is(16)], prev.clone()).triggered);
        let by50pct = serde_json::json!({"percent": 50});
        assert!(!evaluate(&c("changed", by50pct.clone()), &[last_is(5)], prev.clone()).triggered);
        assert!(evaluate(&c("changed", by50pct), &[last_is(4)], prev).triggered);
    }

    #[test]
    fn bad_conditions_are_refused_with_their_field() {
        let bad = parse(
            serde_json::json!({"kind": "rows", "quantifier": "any", "column": " ", "op": ">", "value": true}),
        );
        let fields: Vec<&str> = bad.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["condition.column", "condition.op"]);
        assert!(serde_json::from_value::<Condition>(serde_json::json!({"kind": "rows", "quantifier": "some", "column": "a", "op": ">", "value": 1})).is_err());
        assert!(
            serde_json::from_value::<Condition>(
                serde_json::json!({"kind": "row_count", "op": "~", "value": 1})
            )
            .is_err()
        );
    }

    proptest! {
        /// Split anywhere, the result's batches give the same answer as
        /// one batch: nothing depends on where a batch ends.
        #[test]
        fn batches_do_not_change_the_answer(
            amounts in proptest::collection::vec(proptest::option::of(-100i64..100), 0..40),
            split in 0usize..40,
            threshold in -100i64..100,
            quantifier in prop_oneof![Just("any"), Just("all"), Just("none")],
        ) {
            let names: Vec<&str> = amounts.iter().map(|_| "x").collect();
            let whole = batch(&amounts, &names);
            let at = split.min(amounts.len());
            let parts = [whole.slice(0, at), whole.slice(at, amounts.len() - at)];
            let c = parse(serde_json::json!({"kind": "rows", "quantifier": quantifier, "column": "amount", "op": ">=", "value": threshold}));
            let one = evaluate(&c, std::slice::from_ref(&whole), None);
            let two = evaluate(&c, &parts, None);
            prop_assert_eq!(one.triggered, two.triggered);
            let expected = amounts.iter().filter(|a| a.is_some_and(|a| a >= threshold)).count();
            prop_assert_eq!(one.value, serde_json::json!(expected));
        }
    }
}
