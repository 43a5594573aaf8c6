//! The modes a test run can be in, each set by one environment variable
//! with one rule, and the two functions that size a test by them.
//!
//! A switch is **on** when its variable is set to anything but the empty
//! string or `"0"`: `TARN_SOAK=1`, `TARN_SOAK=yes` and `TARN_SOAK=true`
//! ask for the soak sizes; `TARN_SOAK=0`, `TARN_SOAK=` and an unset
//! variable do not. `TARN_VALGRIND` follows the same rule.

use std::ffi::OsStr;

/// The variable that asks for the soak sizes: the long runs the README's
/// reliability table quotes, instead of the short ones `cargo test` runs.
pub const SOAK_ENV: &str = "TARN_SOAK";

/// The variable `.ci/valgrind.sh` sets: every test runs 30 to 50 times
/// slower under valgrind, so the heavy ones shrink their iteration counts
/// and widen the margins that assume native speed.
pub const VALGRIND_ENV: &str = "TARN_VALGRIND";

/// Whether a switch with this value is on: set, and neither empty nor
/// `"0"`.
pub fn switched_on(value: Option<&OsStr>) -> bool {
    value.is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether [`SOAK_ENV`] is on (see [`switched_on`]).
pub fn soak() -> bool {
    switched_on(std::env::var_os(SOAK_ENV).as_deref())
}

/// Whether [`VALGRIND_ENV`] is on (see [`switched_on`]).
pub fn valgrind() -> bool {
    switched_on(std::env::var_os(VALGRIND_ENV).as_deref())
}

/// `short` in an everyday run, `full` under [`soak`]: the size of a
/// reliability or stress test (connections, bytes, rounds, cases).
///
/// ```
/// let cycles = tarn_test_support::sized(5_000, 100_000);
/// assert!(cycles == 5_000 || cycles == 100_000);
/// ```
pub fn sized<T>(short: T, full: T) -> T {
    if soak() {
        full
    } else {
        short
    }
}

/// `native` in an everyday run, `valgrind` under [`valgrind`]: a count the
/// heavy tests shrink (100,000 ping-pong rounds to 1,000), or a margin that
/// slow code needs widened (a 20 ms wait to 500 ms).
///
/// Like [`sized`], the everyday value comes first.
///
/// ```
/// let rounds = tarn_test_support::native_or_valgrind(100_000, 1_000);
/// assert!(rounds == 100_000 || rounds == 1_000);
/// ```
pub fn native_or_valgrind<T>(native: T, valgrind: T) -> T {
    if self::valgrind() {
        valgrind
    } else {
        native
    }
}

#[cfg(test)]
mod tests {
    use super::switched_on;
    use std::ffi::OsStr;

    #[test]
    fn a_switch_is_on_when_set_to_anything_but_empty_or_zero() {
        for on in ["1", "yes", "true", "00", "2"] {
            assert!(switched_on(Some(OsStr::new(on))), "{on:?}");
        }
        for off in ["", "0"] {
            assert!(!switched_on(Some(OsStr::new(off))), "{off:?}");
        }
        assert!(!switched_on(None));
    }
}
