//! Where a decoded message stream goes: the SMTP session writes DATA into a
//! [`DataSink`], the spool is one. Here rather than in `listener` so that
//! the queue (a lower layer) does not depend on the SMTP engine.

use std::io;

/// Receives the decoded DATA stream. An error of kind `InvalidData` means
/// the message exceeds one of the sink's limits: the client gets a permanent
/// `552 5.3.4` with the error's text; any other error is a temporary `452`.
pub trait DataSink: Send {
    fn write(&mut self, bytes: &[u8]) -> impl Future<Output = io::Result<()>> + Send;
}

/// An in-memory sink (simulator, capture server, tests).
impl DataSink for Vec<u8> {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}
