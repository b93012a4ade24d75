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

/// Slots of the lookup table: part `i` holds about `PARTS + i` shares of
/// them.
const SLOTS: usize = 4096;

/// Which part each slot belongs to: parts in order, part `i` taking
/// `SLOTS · (PARTS + i) / Σ shares` slots (rounded along the running total).
const fn slot_parts() -> [u8; SLOTS] {
    let total_shares = (PARTS * PARTS + PARTS * (PARTS - 1) / 2) as u64;
    let mut table = [0u8; SLOTS];
    let (mut part, mut shares_so_far, mut slot) = (0usize, 0u64, 0usize);
    while part < PARTS {
        shares_so_far += (PARTS + part) as u64;
        let end = (SLOTS as u64 * shares_so_far / total_shares) as usize;
        while slot < end {
            table[slot] = part as u8;
            slot += 1;
        }
        part += 1;
    }
    table
}

/// Each slot's part, computed at compile time.
static SLOT_PARTS: [u8; SLOTS] = slot_parts();

/// The part of `key`: a slot picked by a multiplicative hash (keys are
/// sequential numbers), then that slot's part — one multiply, one shift,
/// one load, as it runs for every spawn and every exit.
pub(crate) fn part_of(key: u64) -> usize {
    let slot = key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SLOTS.trailing_zeros());
    SLOT_PARTS[slot as usize] as usize
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
        // Growing from part to part: no part smaller than one eight before it.
        assert!((8..PARTS).all(|i| sizes[i] > sizes[i - 8]), "{sizes:?}");
    }
}
