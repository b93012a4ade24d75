//! Spreading sequential numbers (pid numbers, child serials) over parts of
//! unequal size, so that tables split into parts never grow all at once.
//!
//! A hash map that grows rehashes every entry in one insert: 115 ms at
//! 917,504 entries on this machine, a whole second of a scheduler's
//! attention at ten million. Split into parts of *equal* size, the parts
//! still reach their next size within a few consecutive inserts, and the
//! rehashes add up to the same pause. Part `i` here takes `PARTS + i`
//! shares of the keys, so part sizes differ up to twice, and their growths
//! are spread over each doubling: for a million entries, one part every ten
//! thousand inserts or so.

/// How many parts.
pub(crate) const PARTS: usize = 64;

const fn part_bounds() -> [u64; PARTS] {
    let mut bounds = [0u64; PARTS];
    let (mut i, mut total) = (0, 0u64);
    while i < PARTS {
        total += (PARTS + i) as u64;
        bounds[i] = total;
        i += 1;
    }
    bounds
}

/// The running total of shares up to each part.
const PART_BOUNDS: [u64; PARTS] = part_bounds();

/// The part of `key`: its place among all the shares, spread by a
/// multiplicative hash (keys are sequential numbers).
pub(crate) fn part_of(key: u64) -> usize {
    let shares = PART_BOUNDS[PARTS - 1];
    let at = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) % shares;
    PART_BOUNDS.partition_point(|&bound| bound <= at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_differ_in_size_so_they_grow_at_different_moments() {
        let mut sizes = [0usize; PARTS];
        for key in 0..640_000u64 {
            sizes[part_of(key)] += 1;
        }
        // Part i takes PARTS + i shares: the last about twice the first.
        let (first, last) = (sizes[0] as f64, sizes[PARTS - 1] as f64);
        assert!((1.8..2.2).contains(&(last / first)), "{sizes:?}");
        assert!(sizes.windows(2).filter(|w| w[1] > w[0]).count() > PARTS * 3 / 4);
    }
}
