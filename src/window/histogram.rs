//! Log-linear bucket layout shared by every slot of a [`RollingWindow`](super::RollingWindow).
//!
//! Values are nanoseconds. Below 2^[`SUB_BITS`] each value has its own bucket. Above it, every
//! power of two `[2^k, 2^(k+1))` is split into 2^[`SUB_BITS`] equal buckets, so a bucket is at
//! most 1/64 of its lower bound wide and its midpoint is within 0.79 % of any value in it.
//! Values at or above [`MAX_VALUE`] (about 73 minutes) land in the last bucket.

/// Bits of linear resolution inside each power of two.
pub(crate) const SUB_BITS: u32 = 6;
const SUB_COUNT: u64 = 1 << SUB_BITS;
/// Highest power of two covered; larger values are clamped into the last bucket.
const MAX_EXPONENT: u32 = 41;
/// The largest value that keeps its own bucket, in nanoseconds.
pub(crate) const MAX_VALUE: u64 = (1 << (MAX_EXPONENT + 1)) - 1;
/// Number of buckets in one histogram.
pub(crate) const BUCKETS: usize = ((MAX_EXPONENT - SUB_BITS + 2) as usize) << SUB_BITS;

/// Returns the bucket that counts `value`.
#[inline]
pub(crate) fn bucket_index(value: u64) -> usize {
    let value = value.min(MAX_VALUE);
    if value < SUB_COUNT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BITS;
    let sub = (value >> shift) & (SUB_COUNT - 1);
    (((shift + 1) as usize) << SUB_BITS) | sub as usize
}

/// Returns the smallest value that falls in bucket `index`.
pub(crate) fn bucket_lower(index: usize) -> u64 {
    let index = index as u64;
    if index < SUB_COUNT {
        return index;
    }
    let shift = (index >> SUB_BITS) - 1;
    let sub = index & (SUB_COUNT - 1);
    (SUB_COUNT | sub) << shift
}

/// Returns the midpoint of bucket `index`, the value a percentile in it is reported as.
pub(crate) fn bucket_mid(index: usize) -> f64 {
    let lower = bucket_lower(index);
    let upper = if index + 1 < BUCKETS { bucket_lower(index + 1) } else { MAX_VALUE + 1 };
    if upper - lower <= 1 {
        return lower as f64;
    }
    // The bucket holds the integers lower..upper; their midpoint is (lower + upper - 1) / 2.
    (lower + upper - 1) as f64 / 2.0
}

/// Returns the value at quantile `q` (0.0 ..= 1.0) of the counts in `buckets`, clamped to the
/// exact `min` and `max` seen, or `None` when the histogram is empty.
///
/// The rank is `ceil(q * count)` (at least 1), the nearest-rank definition, so p50 of
/// `[1, 2, 3, 4]` is 2 and p100 is the maximum.
pub(crate) fn quantile(buckets: &[u64], total: u64, q: f64, min: u64, max: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
    let mut seen = 0;
    for (index, &count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return Some(bucket_mid(index).clamp(min as f64, max as f64));
        }
    }
    Some(max as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn small_values_have_exact_buckets() {
        for value in 0..SUB_COUNT {
            assert_eq!(bucket_index(value), value as usize);
            assert_eq!(bucket_lower(value as usize), value);
        }
        assert_eq!(bucket_index(64), 64);
        assert_eq!(bucket_index(127), 127);
        assert_eq!(bucket_index(128), 128);
        assert_eq!(bucket_index(129), 128);
        assert_eq!(bucket_index(130), 129);
    }

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for index in 1..BUCKETS {
            let lower = bucket_lower(index);
            assert!(lower > bucket_lower(index - 1), "bucket {index} does not grow");
            assert_eq!(bucket_index(lower), index);
            assert_eq!(bucket_index(lower - 1), index - 1);
        }
        assert_eq!(bucket_index(MAX_VALUE), BUCKETS - 1);
        assert_eq!(bucket_index(u64::MAX), BUCKETS - 1);
    }

    proptest! {
        #[test]
        fn midpoint_within_one_percent(value in 1u64..MAX_VALUE) {
            let mid = bucket_mid(bucket_index(value));
            let error = (mid - value as f64).abs() / value as f64;
            prop_assert!(error < 0.01, "value {value} reported as {mid} ({error})");
        }
    }
}
