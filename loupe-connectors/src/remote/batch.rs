//! Building Arrow batches from wire values, as both server connectors do it:
//! when a batch is full ([`BatchLimits`]), the error for a value that does
//! not have the shape its type promises ([`DecodeError`]), and finishing a
//! builder so the next batch starts with room ([`FinishSized`]).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, BooleanArray, BooleanBuilder, GenericByteArray,
    GenericByteBuilder, PrimitiveArray, PrimitiveBuilder,
};
use arrow::datatypes::ByteArrayType;

/// When a batch is handed on: at `rows` rows or about `bytes` bytes of
/// decoded data, whichever comes first. Bounds memory per query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    pub(crate) rows: usize,
    pub(crate) bytes: usize,
}

impl BatchLimits {
    /// True when a batch of `rows` rows and `bytes` bytes should be closed.
    pub(crate) fn full(&self, rows: usize, bytes: usize) -> bool {
        rows >= self.rows || bytes >= self.bytes
    }
}

/// A value that cannot be decoded; the message names the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

impl DecodeError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

pub(crate) type DecodeResult<T = ()> = Result<T, DecodeError>;

/// Finishing a batch's builder so that the next batch starts with room for
/// as many values (and bytes) as this one held. Arrow's `finish` leaves an
/// empty builder that regrows from nothing, doubling and copying every
/// buffer about log2(rows) times per batch; a batch of a result is usually
/// the size of the one before.
pub(crate) trait FinishSized {
    type Array: Array + 'static;

    fn finish_sized(&mut self) -> Self::Array;

    fn finish_sized_ref(&mut self) -> ArrayRef {
        Arc::new(self.finish_sized())
    }
}

impl<T: ArrowPrimitiveType> FinishSized for PrimitiveBuilder<T> {
    type Array = PrimitiveArray<T>;

    fn finish_sized(&mut self) -> PrimitiveArray<T> {
        let array = self.finish();
        // The data type carries what the builder was made with: decimal
        // precision and scale, a timestamp's zone.
        *self =
            PrimitiveBuilder::with_capacity(array.len()).with_data_type(array.data_type().clone());
        array
    }
}

impl<T: ByteArrayType> FinishSized for GenericByteBuilder<T> {
    type Array = GenericByteArray<T>;

    fn finish_sized(&mut self) -> GenericByteArray<T> {
        let array = self.finish();
        *self = GenericByteBuilder::with_capacity(array.len(), array.values().len());
        array
    }
}

impl FinishSized for BooleanBuilder {
    type Array = BooleanArray;

    fn finish_sized(&mut self) -> BooleanArray {
        let array = self.finish();
        *self = BooleanBuilder::with_capacity(array.len());
        array
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Decimal128Builder, StringBuilder, TimestampMicrosecondBuilder};
    use arrow::datatypes::{DataType, TimeUnit};

    #[test]
    fn batches_close_at_either_bound() {
        let b = BatchLimits {
            rows: 10,
            bytes: 100,
        };
        assert!(!b.full(9, 99));
        assert!(b.full(10, 0));
        assert!(b.full(1, 100));
    }

    #[test]
    fn the_next_batch_keeps_the_type_and_gets_the_room() {
        let mut decimals = Decimal128Builder::new()
            .with_precision_and_scale(12, 2)
            .unwrap();
        decimals.extend((0..1000).map(|i| Some(i as i128)));
        let first = decimals.finish_sized_ref();
        assert_eq!(first.len(), 1000);
        assert!(decimals.capacity() >= 1000);
        decimals.append_value(5);
        let second = decimals.finish_sized_ref();
        assert_eq!(second.data_type(), &DataType::Decimal128(12, 2));
        assert_eq!(second.len(), 1);

        let mut stamps = TimestampMicrosecondBuilder::new().with_timezone("UTC");
        stamps.append_value(1);
        stamps.finish_sized();
        stamps.append_null();
        assert_eq!(
            stamps.finish_sized().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );

        let mut text = StringBuilder::new();
        text.append_value("abc");
        text.append_null();
        text.finish_sized();
        assert!(text.values_capacity() >= 3);
        text.append_value("de");
        let strings = text.finish_sized();
        assert_eq!(strings.len(), 1);
        assert_eq!(strings.value(0), "de");
    }
}
