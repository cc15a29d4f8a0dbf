//! The command's output: the macros over [`ota_client::out`], which never panics on a closed
//! stdout or stderr (see there).

pub use ota_client::out::{err_line, line};

/// `println!` that never panics (see the module).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::out::line(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (see the module).
macro_rules! tell {
    ($($arg:tt)*) => {
        $crate::out::err_line(format_args!($($arg)*))
    };
}
