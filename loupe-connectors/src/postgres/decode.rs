//! PostgreSQL's binary wire format, decoded straight into Arrow builders.
//!
//! Each column gets a [`Decode`] chosen once from its type ([`super::types`]).
//! A value arrives as a byte slice (from a `DataRow` or a `COPY BINARY`
//! tuple) and is appended to the column's builder without passing through a
//! Rust value of its own. Malformed input is an error naming the type, never
//! a panic.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use arrow::array::NullBufferBuilder;
use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Decimal128Builder, Decimal256Builder,
    IntervalMonthDayNanoBuilder, ListArray, PrimitiveBuilder, StringBuilder, StructArray,
};
use arrow::buffer::OffsetBuffer;
use arrow::datatypes::{ArrowPrimitiveType, FieldRef, Fields, IntervalMonthDayNano, i256};

use crate::remote::batch::FinishSized;
pub(crate) use crate::remote::batch::{DecodeError, DecodeResult};

/// Appends wire values of one type to an Arrow builder.
pub(crate) trait Decode: Send {
    /// Appends one value; `None` is SQL NULL.
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult;
    /// The array of everything appended since the last call.
    fn finish(&mut self) -> ArrayRef;
}

/// Days from 1970-01-01 to 2000-01-01, PostgreSQL's date epoch.
const DATE_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const TIMESTAMP_EPOCH_MICROS: i64 = 946_684_800_000_000;
const MICROS_PER_DAY: i64 = 86_400_000_000;

fn exact<const N: usize>(raw: &[u8], what: &str) -> DecodeResult<[u8; N]> {
    raw.try_into()
        .map_err(|_| DecodeError::new(format!("{what} value of {} bytes, expected {N}", raw.len())))
}

/// Reads big-endian integers from a wire value, failing on short input.
struct Reader<'a> {
    raw: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(raw: &'a [u8], what: &'static str) -> Self {
        Self { raw, what }
    }

    fn take(&mut self, n: usize) -> DecodeResult<&'a [u8]> {
        if self.raw.len() < n {
            return Err(DecodeError::new(format!(
                "{} value is cut short",
                self.what
            )));
        }
        let (head, tail) = self.raw.split_at(n);
        self.raw = tail;
        Ok(head)
    }

    fn u8(&mut self) -> DecodeResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn i16(&mut self) -> DecodeResult<i16> {
        Ok(i16::from_be_bytes(exact(self.take(2)?, self.what)?))
    }

    fn u16(&mut self) -> DecodeResult<u16> {
        Ok(u16::from_be_bytes(exact(self.take(2)?, self.what)?))
    }

    fn i32(&mut self) -> DecodeResult<i32> {
        Ok(i32::from_be_bytes(exact(self.take(4)?, self.what)?))
    }

    fn i64(&mut self) -> DecodeResult<i64> {
        Ok(i64::from_be_bytes(exact(self.take(8)?, self.what)?))
    }

    /// A length-prefixed value: `-1` is NULL.
    fn value(&mut self) -> DecodeResult<Option<&'a [u8]>> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        Ok(Some(self.take(len as usize)?))
    }

    fn rest(&self) -> &'a [u8] {
        self.raw
    }
}

// ---------------------------------------------------------------------------
// Fixed-width values
// ---------------------------------------------------------------------------

/// A primitive column whose wire value converts with a plain function;
/// `Ok(None)` stores NULL (for ±infinity dates and timestamps).
pub(crate) struct Primitive<T: ArrowPrimitiveType> {
    builder: PrimitiveBuilder<T>,
    parse: fn(&[u8]) -> DecodeResult<Option<T::Native>>,
}

impl<T: ArrowPrimitiveType> Primitive<T> {
    pub(crate) fn new(
        builder: PrimitiveBuilder<T>,
        parse: fn(&[u8]) -> DecodeResult<Option<T::Native>>,
    ) -> Self {
        Self { builder, parse }
    }
}

impl<T: ArrowPrimitiveType> Decode for Primitive<T> {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        match raw {
            None => self.builder.append_null(),
            Some(raw) => self.builder.append_option((self.parse)(raw)?),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.finish_sized_ref()
    }
}

pub(crate) fn int2(raw: &[u8]) -> DecodeResult<Option<i16>> {
    Ok(Some(i16::from_be_bytes(exact(raw, "int2")?)))
}

pub(crate) fn int4(raw: &[u8]) -> DecodeResult<Option<i32>> {
    Ok(Some(i32::from_be_bytes(exact(raw, "int4")?)))
}

pub(crate) fn int8(raw: &[u8]) -> DecodeResult<Option<i64>> {
    Ok(Some(i64::from_be_bytes(exact(raw, "int8")?)))
}

pub(crate) fn uint4(raw: &[u8]) -> DecodeResult<Option<u32>> {
    Ok(Some(u32::from_be_bytes(exact(raw, "oid")?)))
}

pub(crate) fn float4(raw: &[u8]) -> DecodeResult<Option<f32>> {
    Ok(Some(f32::from_be_bytes(exact(raw, "float4")?)))
}

pub(crate) fn float8(raw: &[u8]) -> DecodeResult<Option<f64>> {
    Ok(Some(f64::from_be_bytes(exact(raw, "float8")?)))
}

/// `date`: days since 2000-01-01; ±infinity (i32 max/min) become NULL.
pub(crate) fn date(raw: &[u8]) -> DecodeResult<Option<i32>> {
    let days = i32::from_be_bytes(exact(raw, "date")?);
    if days == i32::MAX || days == i32::MIN {
        return Ok(None);
    }
    Ok(days.checked_add(DATE_EPOCH_DAYS))
}

/// `timestamp`/`timestamptz`: microseconds since 2000-01-01 UTC; ±infinity
/// become NULL.
pub(crate) fn timestamp(raw: &[u8]) -> DecodeResult<Option<i64>> {
    let micros = i64::from_be_bytes(exact(raw, "timestamp")?);
    if micros == i64::MAX || micros == i64::MIN {
        return Ok(None);
    }
    Ok(micros.checked_add(TIMESTAMP_EPOCH_MICROS))
}

/// `time`: microseconds since midnight.
pub(crate) fn time(raw: &[u8]) -> DecodeResult<Option<i64>> {
    Ok(Some(i64::from_be_bytes(exact(raw, "time")?)))
}

/// `timetz`: local time and the zone's offset in seconds west of UTC,
/// normalised to the UTC time of day.
pub(crate) fn timetz(raw: &[u8]) -> DecodeResult<Option<i64>> {
    let mut r = Reader::new(raw, "timetz");
    let local = r.i64()?;
    let west = i64::from(r.i32()?);
    // PostgreSQL sends a time of day, 00:00 to 24:00; anything else is not
    // a timetz (and could overflow when the offset is added).
    if !(0..=MICROS_PER_DAY).contains(&local) {
        return Err(DecodeError::new(format!(
            "timetz of {local} microseconds is not a time of day"
        )));
    }
    Ok(Some((local + west * 1_000_000).rem_euclid(MICROS_PER_DAY)))
}

pub(crate) struct Bool(pub(crate) BooleanBuilder);

impl Decode for Bool {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        match raw {
            None => self.0.append_null(),
            Some(raw) => self.0.append_value(exact::<1>(raw, "bool")?[0] != 0),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.0.finish_sized_ref()
    }
}

/// `interval`: microseconds, days, months. PostgreSQL 17's infinite
/// intervals do not fit in nanoseconds and become NULL.
pub(crate) struct Interval(pub(crate) IntervalMonthDayNanoBuilder);

impl Decode for Interval {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let Some(raw) = raw else {
            self.0.append_null();
            return Ok(());
        };
        let mut r = Reader::new(raw, "interval");
        let micros = r.i64()?;
        let days = r.i32()?;
        let months = r.i32()?;
        match micros.checked_mul(1000) {
            Some(nanos) if micros != i64::MAX && micros != i64::MIN => self
                .0
                .append_value(IntervalMonthDayNano::new(months, days, nanos)),
            _ => self.0.append_null(),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.0.finish_sized_ref()
    }
}

// ---------------------------------------------------------------------------
// numeric
// ---------------------------------------------------------------------------

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A `numeric` as sent: base-10000 digits, the weight of the first digit,
/// the sign (or NaN, ±Infinity) and the display scale.
struct Numeric<'a> {
    digits: Reader<'a>,
    ndigits: usize,
    weight: i32,
    sign: u16,
    dscale: u16,
}

impl<'a> Numeric<'a> {
    fn parse(raw: &'a [u8]) -> DecodeResult<Self> {
        let mut r = Reader::new(raw, "numeric");
        let ndigits = r.i16()?;
        let weight = i32::from(r.i16()?);
        let sign = r.u16()?;
        let dscale = r.u16()?;
        if ndigits < 0 || r.rest().len() != ndigits as usize * 2 {
            return Err(DecodeError::new("numeric value has a wrong digit count"));
        }
        Ok(Self {
            digits: r,
            ndigits: ndigits as usize,
            weight,
            sign,
            dscale,
        })
    }

    fn is_special(&self) -> bool {
        !matches!(self.sign, NUMERIC_POS | NUMERIC_NEG)
    }

    fn next_digit(&mut self) -> DecodeResult<u16> {
        let d = self.digits.u16()?;
        if d >= 10_000 {
            return Err(DecodeError::new("numeric digit out of range"));
        }
        Ok(d)
    }

    /// The value times 10^scale, as an i128 (`None` when it does not fit).
    fn into_i128(mut self, scale: i32) -> DecodeResult<Option<i128>> {
        let mut acc: i128 = 0;
        for _ in 0..self.ndigits {
            let d = self.next_digit()?;
            acc = match acc
                .checked_mul(10_000)
                .and_then(|a| a.checked_add(i128::from(d)))
            {
                Some(a) => a,
                None => return Ok(None),
            };
        }
        // acc holds the value times 10000^(ndigits - 1 - weight).
        let exp = scale - 4 * (self.ndigits as i32 - 1 - self.weight);
        let scaled = if exp >= 0 {
            10i128
                .checked_pow(exp as u32)
                .and_then(|p| acc.checked_mul(p))
        } else {
            10i128
                .checked_pow((-exp) as u32)
                .map(|p| acc / p)
                .or(Some(0))
        };
        Ok(scaled.map(|v| if self.sign == NUMERIC_NEG { -v } else { v }))
    }

    /// The value times 10^scale, as an i256.
    fn into_i256(mut self, scale: i32) -> DecodeResult<Option<i256>> {
        let ten_thousand = i256::from_i128(10_000);
        let mut acc = i256::ZERO;
        for _ in 0..self.ndigits {
            let d = i256::from_i128(i128::from(self.next_digit()?));
            acc = match acc.checked_mul(ten_thousand).and_then(|a| a.checked_add(d)) {
                Some(a) => a,
                None => return Ok(None),
            };
        }
        let exp = scale - 4 * (self.ndigits as i32 - 1 - self.weight);
        let ten = i256::from_i128(10);
        let scaled = if exp >= 0 {
            ten.checked_pow(exp as u32).and_then(|p| acc.checked_mul(p))
        } else {
            match ten.checked_pow((-exp) as u32) {
                Some(p) => acc.checked_div(p),
                None => Some(i256::ZERO),
            }
        };
        Ok(scaled.map(|v| {
            if self.sign == NUMERIC_NEG {
                v.wrapping_neg()
            } else {
                v
            }
        }))
    }

    /// PostgreSQL's own text form: `NaN`, `Infinity`, `-12.3400`.
    fn write_text(mut self, out: &mut String) -> DecodeResult {
        match self.sign {
            NUMERIC_NAN => {
                out.push_str("NaN");
                return Ok(());
            }
            NUMERIC_PINF => {
                out.push_str("Infinity");
                return Ok(());
            }
            NUMERIC_NINF => {
                out.push_str("-Infinity");
                return Ok(());
            }
            NUMERIC_NEG => out.push('-'),
            NUMERIC_POS => {}
            other => return Err(DecodeError::new(format!("numeric sign {other:#x}"))),
        }
        let mut digits = Vec::with_capacity(self.ndigits);
        for _ in 0..self.ndigits {
            digits.push(self.next_digit()?);
        }
        let digit_at = |i: i32| -> u16 {
            usize::try_from(i)
                .ok()
                .and_then(|i| digits.get(i).copied())
                .unwrap_or(0)
        };
        // Integer part: base-10000 groups from weight down to 0.
        if self.weight < 0 {
            out.push('0');
        } else {
            for group in 0..=self.weight {
                let d = digit_at(group);
                if group == 0 {
                    let _ = write!(out, "{d}");
                } else {
                    let _ = write!(out, "{d:04}");
                }
            }
        }
        if self.dscale > 0 {
            out.push('.');
            let mut written = 0usize;
            let mut group = self.weight + 1;
            while written < usize::from(self.dscale) {
                let d = digit_at(group);
                let text = format!("{d:04}");
                for c in text.chars() {
                    if written == usize::from(self.dscale) {
                        break;
                    }
                    out.push(c);
                    written += 1;
                }
                group += 1;
            }
        }
        Ok(())
    }
}

/// `numeric(p, s)` with p <= 38. NaN (and ±Infinity) become NULL.
pub(crate) struct Decimal128 {
    pub(crate) builder: Decimal128Builder,
    pub(crate) scale: i32,
}

impl Decode for Decimal128 {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let Some(raw) = raw else {
            self.builder.append_null();
            return Ok(());
        };
        let n = Numeric::parse(raw)?;
        if n.is_special() {
            self.builder.append_null();
            return Ok(());
        }
        match n.into_i128(self.scale)? {
            Some(v) => self.builder.append_value(v),
            None => {
                return Err(DecodeError::new(
                    "numeric value does not fit its declared precision",
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.finish_sized_ref()
    }
}

/// `numeric(p, s)` with 38 < p <= 76.
pub(crate) struct Decimal256 {
    pub(crate) builder: Decimal256Builder,
    pub(crate) scale: i32,
}

impl Decode for Decimal256 {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let Some(raw) = raw else {
            self.builder.append_null();
            return Ok(());
        };
        let n = Numeric::parse(raw)?;
        if n.is_special() {
            self.builder.append_null();
            return Ok(());
        }
        match n.into_i256(self.scale)? {
            Some(v) => self.builder.append_value(v),
            None => {
                return Err(DecodeError::new(
                    "numeric value does not fit its declared precision",
                ));
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.finish_sized_ref()
    }
}

/// `money`: a 64-bit count of cents.
pub(crate) fn money(raw: &[u8]) -> DecodeResult<Option<i128>> {
    Ok(Some(i128::from(i64::from_be_bytes(exact(raw, "money")?))))
}

// ---------------------------------------------------------------------------
// Text and bytes
// ---------------------------------------------------------------------------

/// UTF-8 text sent as is (`text`, `varchar`, `name`, `json`, enums, ...),
/// after `skip` leading bytes (1 for `jsonb`'s version byte).
pub(crate) struct Text {
    pub(crate) builder: StringBuilder,
    pub(crate) skip: usize,
}

impl Decode for Text {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        match raw {
            None => self.builder.append_null(),
            Some(raw) => {
                let body = raw
                    .get(self.skip..)
                    .ok_or_else(|| DecodeError::new("text value is cut short"))?;
                let text = std::str::from_utf8(body)
                    .map_err(|_| DecodeError::new("text value is not valid UTF-8"))?;
                self.builder.append_value(text);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.finish_sized_ref()
    }
}

/// A value rendered as text by a formatting function (uuid, inet, ...).
pub(crate) struct Formatted {
    builder: StringBuilder,
    format: fn(&[u8], &mut String) -> DecodeResult,
    buffer: String,
}

impl Formatted {
    pub(crate) fn new(format: fn(&[u8], &mut String) -> DecodeResult) -> Self {
        Self {
            builder: StringBuilder::new(),
            format,
            buffer: String::new(),
        }
    }
}

impl Decode for Formatted {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        match raw {
            None => self.builder.append_null(),
            Some(raw) => {
                self.buffer.clear();
                (self.format)(raw, &mut self.buffer)?;
                self.builder.append_value(&self.buffer);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.builder.finish_sized_ref()
    }
}

/// Bytes kept as they are: `bytea`, and types without a mapping.
pub(crate) struct Bytes(pub(crate) BinaryBuilder);

impl Decode for Bytes {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        match raw {
            None => self.0.append_null(),
            Some(raw) => self.0.append_value(raw),
        }
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        self.0.finish_sized_ref()
    }
}

pub(crate) fn numeric_text(raw: &[u8], out: &mut String) -> DecodeResult {
    Numeric::parse(raw)?.write_text(out)
}

pub(crate) fn uuid(raw: &[u8], out: &mut String) -> DecodeResult {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = exact::<16>(raw, "uuid")?;
    // 8-4-4-4-12 hex digits, lowercase, as PostgreSQL prints them; built
    // by table lookup (`write!` per byte cost a quarter of a 5M-row read).
    let mut text = [b'-'; 36];
    let mut at = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            at += 1;
        }
        text[at] = HEX[usize::from(b >> 4)];
        text[at + 1] = HEX[usize::from(b & 0x0f)];
        at += 2;
    }
    out.extend(text.iter().map(|&c| char::from(c)));
    Ok(())
}

/// `inet` and `cidr`, written as PostgreSQL writes them: an `inet` host
/// address without its full-length mask, a `cidr` always with it.
pub(crate) fn inet(raw: &[u8], out: &mut String) -> DecodeResult {
    let mut r = Reader::new(raw, "inet");
    let family = r.u8()?;
    let bits = r.u8()?;
    let is_cidr = r.u8()? != 0;
    let len = r.u8()?;
    let addr = r.take(usize::from(len))?;
    let full = match (family, addr.len()) {
        (2, 4) => {
            let a = Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]);
            let _ = write!(out, "{a}");
            32
        }
        (3, 16) => {
            let a = Ipv6Addr::from(exact::<16>(addr, "inet")?);
            let _ = write!(out, "{a}");
            128
        }
        _ => {
            return Err(DecodeError::new(format!(
                "inet family {family} with {len} bytes"
            )));
        }
    };
    if is_cidr || bits != full {
        let _ = write!(out, "/{bits}");
    }
    Ok(())
}

pub(crate) fn macaddr(raw: &[u8], out: &mut String) -> DecodeResult {
    if raw.len() != 6 && raw.len() != 8 {
        return Err(DecodeError::new(format!("macaddr of {} bytes", raw.len())));
    }
    for (i, b) in raw.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
    Ok(())
}

/// `bit(n)` and `bit varying`: a bit count, then the bits, high bit first.
pub(crate) fn bits(raw: &[u8], out: &mut String) -> DecodeResult {
    let mut r = Reader::new(raw, "bit");
    let n = usize::try_from(r.i32()?).map_err(|_| DecodeError::new("negative bit count"))?;
    let bytes = r.rest();
    if bytes.len() < n.div_ceil(8) {
        return Err(DecodeError::new("bit value is cut short"));
    }
    for i in 0..n {
        let bit = bytes[i / 8] & (0x80 >> (i % 8));
        out.push(if bit == 0 { '0' } else { '1' });
    }
    Ok(())
}

/// `"char"`: one byte.
pub(crate) fn single_char(raw: &[u8], out: &mut String) -> DecodeResult {
    out.push_str(&String::from_utf8_lossy(raw));
    Ok(())
}

// ---------------------------------------------------------------------------
// Arrays, composites, ranges
// ---------------------------------------------------------------------------

/// An array column as nested lists of a fixed depth. PostgreSQL does not
/// fix the number of dimensions in the type, so values with more
/// dimensions than the column have their inner ones flattened, and values
/// with fewer are wrapped in single-element outer lists.
pub(crate) struct List {
    field: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    child: ListChild,
}

pub(crate) enum ListChild {
    List(Box<List>),
    Leaf(Box<dyn Decode>),
}

impl List {
    /// A list of `depth` levels over `leaf`, whose items are `leaf_field`.
    pub(crate) fn new(depth: usize, leaf_field: FieldRef, leaf: Box<dyn Decode>) -> Self {
        let mut list = Self {
            field: leaf_field,
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
            child: ListChild::Leaf(leaf),
        };
        for _ in 1..depth.max(1) {
            let inner_field = Arc::new(arrow::datatypes::Field::new_list_field(
                arrow::datatypes::DataType::List(list.field.clone()),
                true,
            ));
            list = Self {
                field: inner_field,
                offsets: vec![0],
                nulls: NullBufferBuilder::new(0),
                child: ListChild::List(Box::new(list)),
            };
        }
        list
    }

    fn depth(&self) -> usize {
        match &self.child {
            ListChild::List(inner) => inner.depth() + 1,
            ListChild::Leaf(_) => 1,
        }
    }

    fn last_offset(&self) -> i32 {
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Appends one list of `dims[0]` items, each made from the rest of `dims`.
    fn append_dims(&mut self, dims: &[usize], elements: &mut Reader<'_>) -> DecodeResult {
        let count = dims.first().copied().unwrap_or(0);
        let len = i32::try_from(count).map_err(|_| DecodeError::new("array too large"))?;
        let next = self
            .last_offset()
            .checked_add(len)
            .ok_or_else(|| DecodeError::new("array column too large for one batch"))?;
        self.offsets.push(next);
        self.nulls.append_non_null();
        match &mut self.child {
            ListChild::List(inner) => {
                for _ in 0..count {
                    inner.append_dims(dims.get(1..).unwrap_or(&[]), elements)?;
                }
            }
            ListChild::Leaf(leaf) => {
                for _ in 0..count {
                    leaf.append(elements.value()?)?;
                }
            }
        }
        Ok(())
    }
}

impl Decode for List {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let Some(raw) = raw else {
            self.offsets.push(self.last_offset());
            self.nulls.append_null();
            return Ok(());
        };
        let mut r = Reader::new(raw, "array");
        let ndim =
            usize::try_from(r.i32()?).map_err(|_| DecodeError::new("negative array dimensions"))?;
        let _has_nulls = r.i32()?;
        let _element_oid = r.i32()?;
        if ndim > 6 {
            return Err(DecodeError::new(format!("array with {ndim} dimensions")));
        }
        let mut dims = Vec::with_capacity(ndim.max(1));
        for _ in 0..ndim {
            let n =
                usize::try_from(r.i32()?).map_err(|_| DecodeError::new("negative array length"))?;
            let _lower_bound = r.i32()?;
            dims.push(n);
        }
        // Every element takes at least its 4-byte length, so a header that
        // claims more elements than the value has room for is refused
        // before any list is made: dimensions like [2^31, 2^31, 0] would
        // otherwise make billions of empty lists out of a few bytes. A
        // dimension of 0 makes the array empty, as PostgreSQL sends it.
        let elements = if dims.is_empty() {
            Some(0)
        } else {
            dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
        };
        match elements {
            Some(0) => dims.clear(),
            Some(n) if n <= r.raw.len() / 4 => {}
            _ => {
                return Err(DecodeError::new(format!(
                    "array header claims {} elements in {} bytes",
                    elements.map_or_else(|| "too many".to_owned(), |n| n.to_string()),
                    r.raw.len()
                )));
            }
        }
        if dims.is_empty() {
            dims.push(0);
        }
        let depth = self.depth();
        if dims.len() > depth {
            // Flatten the innermost dimensions into the column's last level.
            let keep = depth - 1;
            let inner: usize = dims[keep..].iter().product();
            dims.truncate(keep);
            dims.push(inner);
        }
        while dims.len() < depth {
            dims.insert(0, 1);
        }
        self.append_dims(&dims, &mut r)
    }

    fn finish(&mut self) -> ArrayRef {
        let values = match &mut self.child {
            ListChild::List(inner) => inner.finish(),
            ListChild::Leaf(leaf) => leaf.finish(),
        };
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        let nulls = self.nulls.finish();
        Arc::new(ListArray::new(
            self.field.clone(),
            OffsetBuffer::new(offsets.into()),
            values,
            nulls,
        ))
    }
}

/// A composite type as a struct of its attributes.
pub(crate) struct Composite {
    fields: Fields,
    children: Vec<Box<dyn Decode>>,
    nulls: NullBufferBuilder,
}

impl Composite {
    pub(crate) fn new(fields: Fields, children: Vec<Box<dyn Decode>>) -> Self {
        Self {
            fields,
            children,
            nulls: NullBufferBuilder::new(0),
        }
    }
}

impl Decode for Composite {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let Some(raw) = raw else {
            self.nulls.append_null();
            for child in &mut self.children {
                child.append(None)?;
            }
            return Ok(());
        };
        let mut r = Reader::new(raw, "record");
        let count = usize::try_from(r.i32()?).unwrap_or(usize::MAX);
        if count != self.children.len() {
            return Err(DecodeError::new(format!(
                "record with {count} fields, expected {}",
                self.children.len()
            )));
        }
        for child in &mut self.children {
            let _oid = r.i32()?;
            child.append(r.value()?)?;
        }
        self.nulls.append_non_null();
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        let len = self.nulls.len();
        let arrays = self.children.iter_mut().map(|c| c.finish()).collect();
        let nulls = self.nulls.finish();
        // The length is given, not read from the first field: a composite
        // type may have no fields (`CREATE TYPE t AS ()`), and
        // `StructArray::new` panics on those.
        match StructArray::try_new_with_length(self.fields.clone(), arrays, nulls, len) {
            Ok(array) => Arc::new(array),
            Err(_) => arrow::array::new_null_array(
                &arrow::datatypes::DataType::Struct(self.fields.clone()),
                len,
            ),
        }
    }
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;

/// A range as `{lower, upper, lower_inclusive, upper_inclusive, empty}`;
/// an unbounded side has a NULL bound.
pub(crate) struct Range {
    fields: Fields,
    lower: Box<dyn Decode>,
    upper: Box<dyn Decode>,
    lower_inclusive: BooleanBuilder,
    upper_inclusive: BooleanBuilder,
    empty: BooleanBuilder,
    nulls: NullBufferBuilder,
}

impl Range {
    pub(crate) fn new(fields: Fields, lower: Box<dyn Decode>, upper: Box<dyn Decode>) -> Self {
        Self {
            fields,
            lower,
            upper,
            lower_inclusive: BooleanBuilder::new(),
            upper_inclusive: BooleanBuilder::new(),
            empty: BooleanBuilder::new(),
            nulls: NullBufferBuilder::new(0),
        }
    }
}

impl Decode for Range {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let Some(raw) = raw else {
            self.nulls.append_null();
            self.lower.append(None)?;
            self.upper.append(None)?;
            self.lower_inclusive.append_null();
            self.upper_inclusive.append_null();
            self.empty.append_null();
            return Ok(());
        };
        let mut r = Reader::new(raw, "range");
        let flags = r.u8()?;
        let empty = flags & RANGE_EMPTY != 0;
        let lower = if empty || flags & RANGE_LB_INF != 0 {
            None
        } else {
            r.value()?
        };
        let upper = if empty || flags & RANGE_UB_INF != 0 {
            None
        } else {
            r.value()?
        };
        self.lower.append(lower)?;
        self.upper.append(upper)?;
        self.lower_inclusive.append_value(flags & RANGE_LB_INC != 0);
        self.upper_inclusive.append_value(flags & RANGE_UB_INC != 0);
        self.empty.append_value(empty);
        self.nulls.append_non_null();
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        let arrays: Vec<ArrayRef> = vec![
            self.lower.finish(),
            self.upper.finish(),
            self.lower_inclusive.finish_sized_ref(),
            self.upper_inclusive.finish_sized_ref(),
            self.empty.finish_sized_ref(),
        ];
        Arc::new(StructArray::new(
            self.fields.clone(),
            arrays,
            self.nulls.finish(),
        ))
    }
}

/// A multirange as a list of ranges.
pub(crate) struct Multirange {
    field: FieldRef,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
    range: Range,
}

impl Multirange {
    pub(crate) fn new(field: FieldRef, range: Range) -> Self {
        Self {
            field,
            offsets: vec![0],
            nulls: NullBufferBuilder::new(0),
            range,
        }
    }
}

impl Decode for Multirange {
    fn append(&mut self, raw: Option<&[u8]>) -> DecodeResult {
        let last = self.offsets.last().copied().unwrap_or(0);
        let Some(raw) = raw else {
            self.offsets.push(last);
            self.nulls.append_null();
            return Ok(());
        };
        let mut r = Reader::new(raw, "multirange");
        let count = r.i32()?;
        // A negative count would make the list's offsets go backwards.
        if count < 0 {
            return Err(DecodeError::new("negative multirange length"));
        }
        for _ in 0..count {
            self.range.append(r.value()?)?;
        }
        self.offsets.push(
            last.checked_add(count)
                .ok_or_else(|| DecodeError::new("multirange column too large for one batch"))?,
        );
        self.nulls.append_non_null();
        Ok(())
    }

    fn finish(&mut self) -> ArrayRef {
        let values = self.range.finish();
        let offsets = std::mem::replace(&mut self.offsets, vec![0]);
        Arc::new(ListArray::new(
            self.field.clone(),
            OffsetBuffer::new(offsets.into()),
            values,
            self.nulls.finish(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: i16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&ndigits.to_be_bytes());
        v.extend_from_slice(&weight.to_be_bytes());
        v.extend_from_slice(&sign.to_be_bytes());
        v.extend_from_slice(&dscale.to_be_bytes());
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    fn text(raw: &[u8]) -> String {
        let mut s = String::new();
        numeric_text(raw, &mut s).unwrap();
        s
    }

    #[test]
    fn numerics_to_text_and_decimals() {
        // 12345.6789 = [1, 2345, 6789], weight 1, dscale 4
        let v = numeric(3, 1, NUMERIC_POS, 4, &[1, 2345, 6789]);
        assert_eq!(text(&v), "12345.6789");
        assert_eq!(
            Numeric::parse(&v).unwrap().into_i128(2).unwrap(),
            Some(1_234_567)
        );
        assert_eq!(
            Numeric::parse(&v).unwrap().into_i128(6).unwrap(),
            Some(12_345_678_900)
        );
        // -0.0012 = [12], weight -1, dscale 4
        let v = numeric(1, -1, NUMERIC_NEG, 4, &[12]);
        assert_eq!(text(&v), "-0.0012");
        assert_eq!(Numeric::parse(&v).unwrap().into_i128(4).unwrap(), Some(-12));
        // 1000000 = [100], weight 1
        let v = numeric(1, 1, NUMERIC_POS, 0, &[100]);
        assert_eq!(text(&v), "1000000");
        assert_eq!(
            Numeric::parse(&v).unwrap().into_i256(30).unwrap(),
            Some(i256::from_i128(1_000_000) * i256::from_i128(10).wrapping_pow(30))
        );
        // zero with scale
        let v = numeric(0, 0, NUMERIC_POS, 2, &[]);
        assert_eq!(text(&v), "0.00");
        assert_eq!(text(&numeric(0, 0, NUMERIC_NAN, 0, &[])), "NaN");
        assert_eq!(text(&numeric(0, 0, NUMERIC_NINF, 0, &[])), "-Infinity");
    }

    #[test]
    fn malformed_values_are_errors_not_panics() {
        assert!(Numeric::parse(&[0, 5, 0, 0]).is_err());
        assert!(int4(&[1, 2]).is_err());
        let mut s = String::new();
        assert!(inet(&[2, 32, 0, 9, 1], &mut s).is_err());
        assert!(bits(&[0, 0, 0, 20, 0xff], &mut s).is_err());
        let mut list = List::new(
            1,
            Arc::new(arrow::datatypes::Field::new_list_field(
                arrow::datatypes::DataType::Int32,
                true,
            )),
            Box::new(Primitive::new(
                PrimitiveBuilder::<arrow::datatypes::Int32Type>::new(),
                int4,
            )),
        );
        assert!(list.append(Some(&[0, 0, 0, 1, 0, 0])).is_err());
        assert!(
            list.append(Some(&[0, 0, 0, 99, 0, 0, 0, 0, 0, 0, 0, 23]))
                .is_err()
        );
    }

    /// Found by the 10-minute `postgres_decode` run: an array header with
    /// dimensions [2^31 - 1, 2^31 - 1, 0] made empty lists for minutes out
    /// of 48 bytes. Now a header is held to the bytes that follow it.
    #[test]
    fn an_array_header_is_held_to_the_bytes_that_follow_it() {
        let mut list = List::new(
            1,
            Arc::new(arrow::datatypes::Field::new_list_field(
                arrow::datatypes::DataType::Int32,
                true,
            )),
            Box::new(Primitive::new(
                PrimitiveBuilder::<arrow::datatypes::Int32Type>::new(),
                int4,
            )),
        );
        let header = |dims: &[i32]| {
            let mut v = Vec::new();
            for n in [i32::try_from(dims.len()).unwrap(), 0, 23] {
                v.extend_from_slice(&n.to_be_bytes());
            }
            for d in dims {
                v.extend_from_slice(&d.to_be_bytes());
                v.extend_from_slice(&1i32.to_be_bytes());
            }
            v
        };
        list.append(Some(&header(&[i32::MAX, i32::MAX, 0])))
            .unwrap();
        let error = list
            .append(Some(&header(&[i32::MAX, i32::MAX, 1])))
            .unwrap_err();
        assert!(format!("{error:?}").contains("claims"), "{error:?}");
        let error = list.append(Some(&header(&[3]))).unwrap_err();
        assert!(
            format!("{error:?}").contains("claims 3 elements in 0 bytes"),
            "{error:?}"
        );
        // Two elements: 1 and NULL.
        let mut two = header(&[2]);
        two.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff]);
        list.append(Some(&two)).unwrap();
        let array = list.finish();
        assert_eq!(array.len(), 2, "the empty array and [1, NULL]");
    }

    #[test]
    fn addresses_and_uuids_read_like_postgres_prints_them() {
        let mut s = String::new();
        inet(&[2, 32, 0, 4, 192, 168, 0, 1], &mut s).unwrap();
        assert_eq!(s, "192.168.0.1");
        s.clear();
        inet(&[2, 24, 1, 4, 10, 0, 0, 0], &mut s).unwrap();
        assert_eq!(s, "10.0.0.0/24");
        s.clear();
        uuid(
            &[
                0x55, 0x0e, 0x84, 0, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0,
                0,
            ],
            &mut s,
        )
        .unwrap();
        assert_eq!(s, "550e8400-e29b-41d4-a716-446655440000");
        s.clear();
        bits(&[0, 0, 0, 5, 0b1010_1000], &mut s).unwrap();
        assert_eq!(s, "10101");
    }

    #[test]
    fn infinities_become_null_and_epochs_shift() {
        assert_eq!(date(&i32::MAX.to_be_bytes()).unwrap(), None);
        assert_eq!(date(&0i32.to_be_bytes()).unwrap(), Some(10_957));
        assert_eq!(timestamp(&i64::MIN.to_be_bytes()).unwrap(), None);
        assert_eq!(
            timestamp(&0i64.to_be_bytes()).unwrap(),
            Some(946_684_800_000_000)
        );
        // 10:00 at +02:00 (7200 s east, sent as -7200 west) is 08:00 UTC.
        let mut v = (10 * 3_600_000_000i64).to_be_bytes().to_vec();
        v.extend_from_slice(&(-7200i32).to_be_bytes());
        assert_eq!(timetz(&v).unwrap(), Some(8 * 3_600_000_000));
        // Found by the 10-minute fuzz run: a local time near i64::MAX
        // overflowed when the offset was added.
        let mut v = (i64::MAX - 1).to_be_bytes().to_vec();
        v.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(timetz(&v).is_err());
        let mut v = MICROS_PER_DAY.to_be_bytes().to_vec();
        v.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(timetz(&v).unwrap(), Some(0), "24:00 is midnight");
    }
}
