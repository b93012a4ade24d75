;; The fix for math.wat: same interface, three bugs gone.
;;
;; sum(n) returns (status, lo, hi): status 0 means ∑(1..n) = hi·2^64 + lo
;; (unsigned, exact); status 1 means invalid input (a negative n).
;; sum_digits does the same for inputs beyond 64 bits, on decimal digits in
;; the guest's memory (at the end of this file).
;; 13 is an ordinary number, and the sum uses the closed form n(n+1)/2.
(module
  ;; Calls are independent (no table or mutable global, and a memory that
  ;; starts empty): one instance may serve call after call of `sum`.
  (func (export "owl_reusable"))
  (memory (export "memory") 0)

  (func $sum (export "sum") (param $n i64) (result i32 i64 i64)
    (if (i64.lt_s (local.get $n) (i64.const 0))
      (then (return (i32.const 1) (i64.const 0) (i64.const 0))))
    (i32.const 0)
    (call $closed_form (local.get $n)))

  ;; n(n+1)/2, halving the even factor first so the product is exact.
  (func $closed_form (param $n i64) (result i64 i64)
    (if (result i64 i64) (i64.eqz (i64.and (local.get $n) (i64.const 1)))
      (then
        (call $mul_wide
          (i64.shr_u (local.get $n) (i64.const 1))
          (i64.add (local.get $n) (i64.const 1))))
      (else
        (call $mul_wide
          (local.get $n)
          (i64.shr_u (i64.add (local.get $n) (i64.const 1)) (i64.const 1))))))

  ;; The full 128-bit product of two unsigned 64-bit numbers, as (lo, hi),
  ;; from four 32×32-bit partial products.
  (func $mul_wide (param $a i64) (param $b i64) (result i64 i64)
    (local $a0 i64) (local $a1 i64) (local $b0 i64) (local $b1 i64)
    (local $p00 i64) (local $p01 i64) (local $p10 i64) (local $p11 i64)
    (local $mid i64)
    (local.set $a0 (i64.and (local.get $a) (i64.const 0xffffffff)))
    (local.set $a1 (i64.shr_u (local.get $a) (i64.const 32)))
    (local.set $b0 (i64.and (local.get $b) (i64.const 0xffffffff)))
    (local.set $b1 (i64.shr_u (local.get $b) (i64.const 32)))
    (local.set $p00 (i64.mul (local.get $a0) (local.get $b0)))
    (local.set $p01 (i64.mul (local.get $a0) (local.get $b1)))
    (local.set $p10 (i64.mul (local.get $a1) (local.get $b0)))
    (local.set $p11 (i64.mul (local.get $a1) (local.get $b1)))
    ;; the middle column: the high half of p00 plus the low halves of p01, p10
    (local.set $mid
      (i64.add
        (i64.add (i64.shr_u (local.get $p00) (i64.const 32))
                 (i64.and (local.get $p01) (i64.const 0xffffffff)))
        (i64.and (local.get $p10) (i64.const 0xffffffff))))
    (i64.or (i64.and (local.get $p00) (i64.const 0xffffffff))
            (i64.shl (local.get $mid) (i64.const 32)))
    (i64.add
      (i64.add (local.get $p11) (i64.shr_u (local.get $mid) (i64.const 32)))
      (i64.add (i64.shr_u (local.get $p01) (i64.const 32))
               (i64.shr_u (local.get $p10) (i64.const 32)))))

  ;; sum_digits(at, len) -> (status, at, len): ∑(1..n) for n given as the
  ;; decimal digits at `at` (a leading '-' for a negative n), answered as
  ;; decimal digits; status 1 means invalid input. The host calls it for
  ;; inputs beyond 64 bits; the closed form again, on limbs.
  (func (export "sum_digits") (param $at i32) (param $len i32) (result i32 i32 i32)
    (local $n i32) (local $nn i32) (local $m i32) (local $nm i32)
    (local $r i32) (local $nr i32)
    (if (i32.eqz (call $all_digits (local.get $at) (local.get $len)))
      (then (return (i32.const 1) (i32.const 0) (i32.const 0))))
    (call $parse (local.get $at) (local.get $len) (i32.const 1))
    (local.set $nn)
    (local.set $n)
    ;; n + 1, in a copy of its own
    (call $parse (local.get $at) (local.get $len) (i32.const 1))
    (local.set $nm)
    (local.set $m)
    (local.set $nm (call $add_small (local.get $m) (local.get $nm) (i32.const 1)))
    (call $mul (local.get $n) (local.get $nn) (local.get $m) (local.get $nm))
    (local.set $nr)
    (local.set $r)
    (call $half (local.get $r) (local.get $nr))
    (i32.const 0)
    (call $format (local.get $r) (local.get $nr)))

  ;; a × b, schoolbook: (limbs, count). Each step's 64-bit sum stays below
  ;; 10^9 + (10^9 - 1)^2 + 10^9 < 2^63.
  (func $mul (param $a i32) (param $na i32) (param $b i32) (param $nb i32) (result i32 i32)
    (local $r i32) (local $i i32) (local $j i32) (local $ai i64) (local $carry i64)
    (local $t i64) (local $addr i32)
    (local.set $r (call $alloc (i32.shl (i32.add (local.get $na) (local.get $nb)) (i32.const 2))))
    (block $rows
      (loop $row
        (br_if $rows (i32.ge_u (local.get $i) (local.get $na)))
        (local.set $ai
          (i64.load32_u (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $carry (i64.const 0))
        (local.set $j (i32.const 0))
        (block $columns
          (loop $column
            (br_if $columns (i32.ge_u (local.get $j) (local.get $nb)))
            (local.set $addr
              (i32.add (local.get $r)
                       (i32.shl (i32.add (local.get $i) (local.get $j)) (i32.const 2))))
            (local.set $t
              (i64.add
                (i64.add (i64.load32_u (local.get $addr))
                         (i64.mul (local.get $ai)
                                  (i64.load32_u (i32.add (local.get $b)
                                                         (i32.shl (local.get $j) (i32.const 2))))))
                (local.get $carry)))
            (i64.store32 (local.get $addr) (i64.rem_u (local.get $t) (i64.const 1000000000)))
            (local.set $carry (i64.div_u (local.get $t) (i64.const 1000000000)))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $column)))
        (i64.store32
          (i32.add (local.get $r) (i32.shl (i32.add (local.get $i) (local.get $nb)) (i32.const 2)))
          (local.get $carry))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $row)))
    (local.get $r)
    (i32.add (local.get $na) (local.get $nb)))

  ;; limbs /= 2, in place, from the top (the product n(n+1) is even).
  (func $half (param $limbs i32) (param $count i32)
    (local $rest i64) (local $cur i64) (local $addr i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $count)))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (local.set $addr (i32.add (local.get $limbs) (i32.shl (local.get $count) (i32.const 2))))
        (local.set $cur
          (i64.add (i64.mul (local.get $rest) (i64.const 1000000000))
                   (i64.load32_u (local.get $addr))))
        (i64.store32 (local.get $addr) (i64.shr_u (local.get $cur) (i64.const 1)))
        (local.set $rest (i64.and (local.get $cur) (i64.const 1)))
        (br $next))))

  ;; ---- Integers of any size, for inputs beyond 64 bits -------------------
  ;;
  ;; A number is an array of 32-bit limbs in base 10^9, least significant
  ;; first, in this instance's own memory. Memory starts empty and only
  ;; grows (`$alloc`), so the guest's memory cap bounds what a huge input
  ;; can cost, and a call that used memory never leaves its instance to
  ;; another call.

  ;; Grows memory by enough pages for `bytes`; where they start (zeroed).
  (func $alloc (param $bytes i32) (result i32)
    (local $at i32)
    (local.set $at (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.eq
          (memory.grow (i32.div_u (i32.add (local.get $bytes) (i32.const 65535))
                                  (i32.const 65536)))
          (i32.const -1))
      (then unreachable))
    (local.get $at))

  ;; 1 if the `len` bytes at `at` are all decimal digits (and there is one).
  (func $all_digits (param $at i32) (param $len i32) (result i32)
    (local $end i32) (local $c i32)
    (if (i32.eqz (local.get $len)) (then (return (i32.const 0))))
    (local.set $end (i32.add (local.get $at) (local.get $len)))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $at) (local.get $end)))
        (local.set $c (i32.load8_u (local.get $at)))
        (if (i32.or (i32.lt_u (local.get $c) (i32.const 48))
                    (i32.gt_u (local.get $c) (i32.const 57)))
          (then (return (i32.const 0))))
        (local.set $at (i32.add (local.get $at) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; The decimal digits at `at` as limbs, with `spare` zero limbs above
  ;; them for carries: (limbs, count), count ≥ 1.
  (func $parse (param $at i32) (param $len i32) (param $spare i32) (result i32 i32)
    (local $count i32) (local $limbs i32) (local $k i32)
    (local $start i32) (local $end i32) (local $p i32) (local $value i32)
    (local.set $count (i32.div_u (i32.add (local.get $len) (i32.const 8)) (i32.const 9)))
    (if (i32.eqz (local.get $count)) (then (local.set $count (i32.const 1))))
    (local.set $limbs
      (call $alloc (i32.shl (i32.add (local.get $count) (local.get $spare)) (i32.const 2))))
    (local.set $end (i32.add (local.get $at) (local.get $len)))
    (block $done
      (loop $limb
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        ;; the (up to) nine digits that end at $end
        (local.set $start (local.get $at))
        (if (i32.gt_u (i32.sub (local.get $end) (local.get $at)) (i32.const 9))
          (then (local.set $start (i32.sub (local.get $end) (i32.const 9)))))
        (local.set $value (i32.const 0))
        (local.set $p (local.get $start))
        (block $read
          (loop $digit
            (br_if $read (i32.ge_u (local.get $p) (local.get $end)))
            (local.set $value
              (i32.add (i32.mul (local.get $value) (i32.const 10))
                       (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $digit)))
        (i32.store (i32.add (local.get $limbs) (i32.shl (local.get $k) (i32.const 2)))
                   (local.get $value))
        (local.set $end (local.get $start))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $limb)))
    (local.get $limbs)
    (local.get $count))

  ;; limbs += small, in place (its spare limb takes a carry out of the
  ;; top); the count after.
  (func $add_small (param $limbs i32) (param $count i32) (param $carry i32) (result i32)
    (local $i i32) (local $addr i32) (local $v i32)
    (block $done
      (loop $next
        (br_if $done (i32.eqz (local.get $carry)))
        (local.set $addr (i32.add (local.get $limbs) (i32.shl (local.get $i) (i32.const 2))))
        (local.set $v (i32.add (i32.load (local.get $addr)) (local.get $carry)))
        (local.set $carry (i32.div_u (local.get $v) (i32.const 1000000000)))
        (i32.store (local.get $addr) (i32.rem_u (local.get $v) (i32.const 1000000000)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (select (local.get $i) (local.get $count) (i32.gt_u (local.get $i) (local.get $count))))

  ;; Formats `count` limbs as decimal digits, without leading zeros:
  ;; (at, len).
  (func $format (param $limbs i32) (param $count i32) (result i32 i32)
    (local $end i32) (local $p i32) (local $i i32) (local $v i32) (local $k i32)
    ;; zero limbs at the top do not count
    (block $trimmed
      (loop $trim
        (br_if $trimmed (i32.le_u (local.get $count) (i32.const 1)))
        (br_if $trimmed
          (i32.load (i32.add (local.get $limbs)
                             (i32.shl (i32.sub (local.get $count) (i32.const 1)) (i32.const 2)))))
        (local.set $count (i32.sub (local.get $count) (i32.const 1)))
        (br $trim)))
    (local.set $end
      (i32.add (call $alloc (i32.mul (local.get $count) (i32.const 9)))
               (i32.mul (local.get $count) (i32.const 9))))
    ;; written backwards, from the last digit
    (local.set $p (local.get $end))
    (block $done
      (loop $limb
        (local.set $v
          (i32.load (i32.add (local.get $limbs) (i32.shl (local.get $i) (i32.const 2)))))
        (if (i32.lt_u (i32.add (local.get $i) (i32.const 1)) (local.get $count))
          (then
            ;; a lower limb: exactly nine digits, zeros included
            (local.set $k (i32.const 9))
            (loop $digit
              (local.set $p (i32.sub (local.get $p) (i32.const 1)))
              (i32.store8 (local.get $p)
                (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
              (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
              (local.set $k (i32.sub (local.get $k) (i32.const 1)))
              (br_if $digit (local.get $k))))
          (else
            ;; the top limb: its digits, at least one
            (loop $digit
              (local.set $p (i32.sub (local.get $p) (i32.const 1)))
              (i32.store8 (local.get $p)
                (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
              (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
              (br_if $digit (local.get $v)))
            (br $done)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $limb)))
    (local.get $p)
    (i32.sub (local.get $end) (local.get $p))))
