//! The DataFusion session used for planning.

use datafusion::prelude::{SessionConfig, SessionContext};

/// A DataFusion context with Shoal's UDFs registered. Identifiers are
/// case-sensitive as written in the pipeline file.
pub fn sql_context() -> SessionContext {
    let config = SessionConfig::new().with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    shoal_udfs::register_all(&ctx);
    ctx
}
