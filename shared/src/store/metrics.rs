//! CloudWatch metrics: named values put into a namespace, each with the same dimensions.

use crate::error::{ArcError, Result};
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatch::Client;

/// PutMetricData takes at most this many values per call.
const MAX_PER_CALL: usize = 1000;

/// The unit of a metric value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Percent,
    Seconds,
    /// No unit (an amount of money, a ratio).
    None,
}

impl Unit {
    fn standard(self) -> StandardUnit {
        match self {
            Self::Count => StandardUnit::Count,
            Self::Percent => StandardUnit::Percent,
            Self::Seconds => StandardUnit::Seconds,
            Self::None => StandardUnit::None,
        }
    }
}

/// One metric value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datum<'a> {
    pub name: &'a str,
    pub value: f64,
    pub unit: Unit,
}

impl<'a> Datum<'a> {
    pub fn new(name: &'a str, value: f64, unit: Unit) -> Self {
        Self { name, value, unit }
    }

    /// A count.
    pub fn count(name: &'a str, value: f64) -> Self {
        Self::new(name, value, Unit::Count)
    }
}

/// PutMetricData of `data` into `namespace`, each value with every `(name, value)` of
/// `dimensions`. Nothing is sent for no data.
pub async fn put_metrics(cw: &Client, namespace: &str, data: &[Datum<'_>], dimensions: &[(&str, &str)]) -> Result<()> {
    let dims: Vec<Dimension> =
        dimensions.iter().map(|(n, v)| Dimension::builder().name(*n).value(*v).build()).collect();
    for chunk in data.chunks(MAX_PER_CALL) {
        let metric_data: Vec<MetricDatum> = chunk
            .iter()
            .map(|d| {
                MetricDatum::builder()
                    .metric_name(d.name)
                    .value(d.value)
                    .unit(d.unit.standard())
                    .set_dimensions((!dims.is_empty()).then(|| dims.clone()))
                    .build()
            })
            .collect();
        cw.put_metric_data()
            .namespace(namespace)
            .set_metric_data(Some(metric_data))
            .send()
            .await
            .map_err(|e| ArcError::from_sdk("PutMetricData", e))?;
    }
    Ok(())
}
