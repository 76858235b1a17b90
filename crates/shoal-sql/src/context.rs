//! The DataFusion session used for planning.

use datafusion::prelude::{SessionConfig, SessionContext};

/// A DataFusion context with Shoal's UDFs and the window functions
/// (`tumble`, `hop`, `session`) registered. Identifiers are
/// case-sensitive as written in the pipeline file.
pub fn sql_context() -> SessionContext {
    let config = SessionConfig::new().with_information_schema(false);
    let ctx = SessionContext::new_with_config(config);
    shoal_udfs::register_all(&ctx);
    crate::window::register_window_functions(&ctx);
    // A streaming GROUP BY must stay one aggregate: do not split
    // `COUNT(DISTINCT x)` into two nested ones.
    ctx.remove_optimizer_rule("single_distinct_aggregation_to_group_by");
    ctx
}
