//! Names on the write side: which stream holds a pipeline or an execution, and the key that
//! groups a pipeline's executions. The actors write under these names and the views read them
//! back, so they live here rather than with either.

/// The prefix of every pipeline stream.
pub const PIPELINE_STREAM_PREFIX: &str = "pipeline:";

/// The prefix of every execution stream.
pub const EXECUTION_STREAM_PREFIX: &str = "execution:";

/// The stream of the pipeline `name` in an account and region.
pub fn pipeline_stream(account: &str, region: &str, name: &str) -> String {
    format!("{PIPELINE_STREAM_PREFIX}{account}:{region}:{name}")
}

/// The stream of an execution.
pub fn execution_stream(account: &str, region: &str, pipeline: &str, id: &str) -> String {
    format!("{EXECUTION_STREAM_PREFIX}{account}:{region}:{pipeline}:{id}")
}

/// The key of a pipeline's executions: `<account>:<region>:<name>`.
pub fn pipeline_key(account: &str, region: &str, pipeline: &str) -> String {
    format!("{account}:{region}:{pipeline}")
}

/// A pipeline by account, region and name: what every stream name and key is made from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PipelineKey {
    /// The 12-digit account id.
    pub account: String,
    /// The region.
    pub region: String,
    /// The pipeline name.
    pub name: String,
}

impl PipelineKey {
    /// The key of a pipeline.
    pub fn new(account: &str, region: &str, name: &str) -> Self {
        PipelineKey {
            account: account.to_string(),
            region: region.to_string(),
            name: name.to_string(),
        }
    }

    /// Reads `<account>:<region>:<name>` back (a name may not hold `:`, an account or region
    /// neither).
    pub fn parse(key: &str) -> Option<Self> {
        let mut parts = key.splitn(3, ':');
        Some(PipelineKey::new(
            parts.next()?,
            parts.next()?,
            parts.next()?,
        ))
    }

    /// Reads a pipeline stream name back.
    pub fn of_stream(stream: &str) -> Option<Self> {
        Self::parse(stream.strip_prefix(PIPELINE_STREAM_PREFIX)?)
    }

    /// The pipeline's stream.
    pub fn stream(&self) -> String {
        pipeline_stream(&self.account, &self.region, &self.name)
    }

    /// The stream of one of its executions.
    pub fn execution_stream(&self, id: &str) -> String {
        execution_stream(&self.account, &self.region, &self.name, id)
    }

    /// `<account>:<region>:<name>`, the key the views group executions by.
    pub fn key(&self) -> String {
        pipeline_key(&self.account, &self.region, &self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        let key = PipelineKey::new("000000000000", "eu-central-1", "p");
        assert_eq!(key.stream(), "pipeline:000000000000:eu-central-1:p");
        assert_eq!(PipelineKey::of_stream(&key.stream()), Some(key.clone()));
        assert_eq!(PipelineKey::parse(&key.key()), Some(key.clone()));
        assert_eq!(
            key.execution_stream("e"),
            "execution:000000000000:eu-central-1:p:e"
        );
        assert_eq!(PipelineKey::of_stream("execution:a:b:c"), None);
    }
}
