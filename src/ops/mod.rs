//! Operations the command line, the daemon and the HTTP API share, over any
//! [`Store`](crate::store::Store): applying a plan under the apply lock,
//! measuring a plan's membership impact, sampling segment sizes, and writing
//! the applied definitions back as files. The edges parse, confirm and print;
//! these do the work once.

pub mod apply;
pub mod export;
pub mod impact;
pub mod sizes;
