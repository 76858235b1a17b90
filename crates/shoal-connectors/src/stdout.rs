//! The `stdout` sink: JSON lines (or CSV) on standard output.
//!
//! Not transactional: after a crash and restart from a checkpoint, records
//! after that checkpoint are printed again (at-least-once).

use std::io::{BufWriter, Stdout, Write};

use arrow::record_batch::RecordBatch;
use shoal_dsl::FileFormat;
use shoal_runtime::{Result, RuntimeError, Sink};

use crate::format::RecordEncoder;

/// Writes batches to stdout.
pub struct StdoutSink {
    out: BufWriter<Stdout>,
    encoder: RecordEncoder,
}

impl StdoutSink {
    /// A stdout sink in `format`.
    pub fn new(format: FileFormat) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, std::io::stdout()),
            encoder: RecordEncoder::new(format),
        }
    }
}

impl Sink for StdoutSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.encoder.write(&mut self.out, batch)?;
        // Keep output flowing for people watching.
        self.out.flush().map_err(|e| RuntimeError::io("stdout", e))
    }

    fn finish(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| RuntimeError::io("stdout", e))
    }
}
