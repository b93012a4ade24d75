;; The talk's calculation, version 1 — with its three bugs on purpose.
;;
;; sum(n) returns (status, lo, hi): status 0 means ∑(1..n) is the unsigned
;; 128-bit number hi·2^64 + lo, exact for every n that finishes.
;; sum_digits does the same for inputs beyond 64 bits, on decimal digits in
;; the guest's memory (at the end of this file).
;;
;; Bug 1 (edge case): 13 crashes.
;; Bug 2 (missing input validation): the loop counts up from 1 until it meets
;;        n, so for n < 1 it never ends.
;; Bug 3 (performance): a naive O(n) loop, so huge inputs take ages.
(module
  ;; Calls are independent (no table or mutable global, and a memory that
  ;; starts empty): one instance may serve call after call of `sum`.
  (func (export "owl_reusable"))
  (memory (export "memory") 0)

  (func $sum (export "sum") (param $n i64) (result i32 i64 i64)
    (if (i64.eq (local.get $n) (i64.const 13))
      (then unreachable))
    (i32.const 0)
    (call $naive_sum (local.get $n)))

  (func $naive_sum (param $n i64) (result i64 i64)
    (local $i i64) (local $lo i64) (local $hi i64) (local $next i64)
    (local.set $i (i64.const 1))
    (block $done
      (loop $again
        ;; lo:hi += i, carrying into hi
        (local.set $next (i64.add (local.get $lo) (local.get $i)))
        (if (i64.lt_u (local.get $next) (local.get $lo))
          (then (local.set $hi (i64.add (local.get $hi) (i64.const 1)))))
        (local.set $lo (local.get $next))
        (br_if $done (i64.eq (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $again)))
    (local.get $lo)
    (local.get $hi))

  ;; sum_digits(at, len) -> (status, at, len): ∑(1..n) for n given as the
  ;; decimal digits at `at` (a leading '-' for a negative n), answered as
  ;; decimal digits. The host calls it for inputs beyond 64 bits, and it has
  ;; the same three bugs, on limbs: 13 crashes, counting up from 1 never
  ;; meets a negative n, and the loop is O(n).
  (func (export "sum_digits") (param $at i32) (param $len i32) (result i32 i32 i32)
    (local $negative i32) (local $n i32) (local $nn i32) (local $i i32)
    (local $acc i32) (local $nacc i32)
    (if (i32.eq (local.get $len) (i32.const 2))
      (then
        (if (i32.eq (i32.load16_u (local.get $at)) (i32.const 0x3331)) ;; "13"
          (then unreachable))))
    (if (i32.ge_u (local.get $len) (i32.const 1))
      (then
        (if (i32.eq (i32.load8_u (local.get $at)) (i32.const 45)) ;; '-'
          (then
            (local.set $negative (i32.const 1))
            (local.set $at (i32.add (local.get $at) (i32.const 1)))
            (local.set $len (i32.sub (local.get $len) (i32.const 1)))))))
    (call $parse (local.get $at) (local.get $len) (i32.const 0))
    (local.set $nn)
    (local.set $n)
    ;; i = 1, as wide as n and a spare limb
    (local.set $i (call $alloc (i32.shl (i32.add (local.get $nn) (i32.const 1)) (i32.const 2))))
    (i32.store (local.get $i) (i32.const 1))
    ;; the sum needs at most twice n's limbs, and one more
    (local.set $nacc (i32.add (i32.shl (local.get $nn) (i32.const 1)) (i32.const 1)))
    (local.set $acc (call $alloc (i32.shl (local.get $nacc) (i32.const 2))))
    (block $done
      (loop $again
        (call $add_into (local.get $acc) (local.get $i) (i32.add (local.get $nn) (i32.const 1)))
        (br_if $done
          (i32.and (i32.eqz (local.get $negative))
                   (call $equal (local.get $i) (local.get $n) (local.get $nn))))
        (drop (call $add_small (local.get $i) (local.get $nn) (i32.const 1)))
        (br $again)))
    (i32.const 0)
    (call $format (local.get $acc) (local.get $nacc)))

  ;; acc += x (x has `nx` limbs), in place. (For a negative n the loop runs
  ;; until its CPU budget ends it, long before the sum could outgrow acc.)
  (func $add_into (param $acc i32) (param $x i32) (param $nx i32)
    (local $k i32) (local $carry i32) (local $v i32) (local $addr i32)
    (block $done
      (loop $next
        (br_if $done
          (i32.and (i32.ge_u (local.get $k) (local.get $nx)) (i32.eqz (local.get $carry))))
        (local.set $addr (i32.add (local.get $acc) (i32.shl (local.get $k) (i32.const 2))))
        (local.set $v (i32.add (i32.load (local.get $addr)) (local.get $carry)))
        (if (i32.lt_u (local.get $k) (local.get $nx))
          (then
            (local.set $v
              (i32.add (local.get $v)
                       (i32.load (i32.add (local.get $x) (i32.shl (local.get $k) (i32.const 2))))))))
        (local.set $carry (i32.ge_u (local.get $v) (i32.const 1000000000)))
        (i32.store (local.get $addr)
          (select (i32.sub (local.get $v) (i32.const 1000000000)) (local.get $v) (local.get $carry)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next))))

  ;; 1 if i (n's width and a spare limb) equals n.
  (func $equal (param $i i32) (param $n i32) (param $nn i32) (result i32)
    (local $k i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $nn)))
        (if (i32.ne (i32.load (i32.add (local.get $i) (i32.shl (local.get $k) (i32.const 2))))
                    (i32.load (i32.add (local.get $n) (i32.shl (local.get $k) (i32.const 2)))))
          (then (return (i32.const 0))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (i32.eqz (i32.load (i32.add (local.get $i) (i32.shl (local.get $nn) (i32.const 2))))))

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
