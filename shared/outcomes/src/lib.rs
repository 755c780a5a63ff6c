//! # optline-outcomes
//!
//! Measuring the program, the third step of a compliant SMS program
//! (measure, audit, refine):
//!
//! - [`count`]: each fact's [`Tally`](optline_ports::Tally), committed with
//!   the fact, counted once into its rollup (program × template version ×
//!   experiment arm × day) from the table's stream;
//! - [`kpi`]: the KPIs defined on the rollups (`docs/outcomes.md`);
//! - [`coverage`]: consent coverage per category, a census of the contacts;
//! - [`report`]: one report for the ops CLI and the console, as a table,
//!   JSON, CSV or printable HTML with charts.

pub mod count;
pub mod coverage;
pub mod experiments;
pub mod kpi;
pub mod pauses;
pub mod report;
mod svg;
pub mod warm;

pub use count::{count, tally_from_data, Arrived, BatchMetrics, TALLY_PREFIX};
pub use kpi::{kpis, quantile, Kpis, Quantiles};
pub use report::{
    build, gather, headline, Format, Report, ReportRequest, DEFAULT_PRICE_PER_SEGMENT,
};
