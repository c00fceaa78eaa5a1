//! Operations the command line, the daemon and the HTTP API share, over any
//! [`Store`](crate::store::Store): applying a plan under the apply lock, and
//! measuring a plan's membership impact. The edges parse, confirm and print;
//! these do the work once.

pub mod apply;
pub mod impact;
