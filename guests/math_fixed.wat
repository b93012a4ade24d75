;; The fix for math.wat: same interface, three bugs gone.
;;
;; sum(n) returns (status, lo, hi): status 0 means ∑(1..n) = hi·2^64 + lo
;; (unsigned, exact); status 1 means invalid input (a negative n).
;; 13 is an ordinary number, and the sum uses the closed form n(n+1)/2.
(module
  ;; Calls are independent (no memory, table or mutable global): one
  ;; instance may serve call after call.
  (func (export "owl_reusable"))

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
               (i64.shr_u (local.get $p10) (i64.const 32))))))
