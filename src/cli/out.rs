//! Standard output. A reader that goes away (`segd … | head -1`) ends the
//! command quietly with exit code 141, as a Unix tool killed by SIGPIPE does;
//! any other write failure is an error. `println!`/`print!` are denied
//! (clippy.toml) because they panic on a closed pipe.

use super::CliError;
use std::io::{BufWriter, StdoutLock, Write};

/// Writes `args` to stdout and flushes it.
pub fn write(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.flush()?;
    Ok(())
}

/// Writes `args` and a newline to stdout.
pub fn line(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Buffered stdout for streamed rows. A row callback can only tell the
/// stream to stop; the first write failure is kept here, and
/// [`Stream::finish`] returns it (a closed pipe as [`CliError::ClosedPipe`]).
pub struct Stream {
    out: BufWriter<StdoutLock<'static>>,
    failed: Option<std::io::Error>,
}

impl Stream {
    pub fn new() -> Self {
        Stream {
            out: BufWriter::new(std::io::stdout().lock()),
            failed: None,
        }
    }

    fn keep<T>(&mut self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r
            && self.failed.is_none()
        {
            self.failed = Some(std::io::Error::new(e.kind(), e.to_string()));
        }
        r
    }

    /// Flushes; the first failure of the whole stream, if any.
    pub fn finish(mut self) -> Result<(), CliError> {
        let flushed = self.out.flush();
        let flushed = self.keep(flushed);
        match self.failed.take() {
            Some(e) => Err(e.into()),
            None => flushed.map_err(CliError::from),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let r = self.out.write(buf);
        self.keep(r)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let r = self.out.flush();
        self.keep(r)
    }
}

/// `print!` that returns [`CliError::ClosedPipe`] instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::cli::out::write(format_args!($($arg)*)) };
}

/// `println!` that returns [`CliError::ClosedPipe`] instead of panicking.
macro_rules! outln {
    () => { $crate::cli::out::write(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::cli::out::line(format_args!($($arg)*)) };
}
