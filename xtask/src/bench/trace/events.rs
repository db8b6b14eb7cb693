//! Reading the JSON Lines of `listns --follow --json`.

use serde_json::Value;

/// The fields of an event line that the benchmark uses.
pub struct EventFields {
    pub kind: String,
    pub ns_type: Option<String>,
    pub ns_id: Option<u64>,
    pub pid: Option<u32>,
    pub ppid: Option<u32>,
    /// Dropped kernel events, in `lost` events.
    pub count: Option<u64>,
}

/// Parses one line of `listns --follow --json`; returns None for the
/// snapshot and for anything that is not an event.
pub fn parse_event(line: &str) -> Option<EventFields> {
    // The snapshot is one line of megabytes; skip it without parsing.
    if !line.starts_with("{\"schema\":\"listns.event\"") {
        return None;
    }
    let value: Value = serde_json::from_str(line).ok()?;
    let number = |key: &str| value[key].as_u64().and_then(|n| u32::try_from(n).ok());
    Some(EventFields {
        kind: value["event"].as_str()?.to_owned(),
        ns_type: value["ns"]["type"].as_str().map(str::to_owned),
        ns_id: value["ns"]["id"].as_u64(),
        pid: number("pid"),
        ppid: number("ppid"),
        count: value["count"].as_u64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_event_reads_created() {
        let line = r#"{"schema":"listns.event","schema_version":1,"event":"created","ns":{"type":"uts","inode":4026532174,"id":5},"pid":19715,"tid":19715,"ppid":19635,"count":null}"#;
        let event = parse_event(line).unwrap();
        assert_eq!(event.kind, "created");
        assert_eq!(event.ns_type.as_deref(), Some("uts"));
        assert_eq!(event.ns_id, Some(5));
        assert_eq!(event.pid, Some(19715));
        assert_eq!(event.ppid, Some(19635));
        assert_eq!(event.count, None);
    }

    #[test]
    fn parse_event_reads_lost_count() {
        let line = r#"{"schema":"listns.event","event":"lost","ns":null,"pid":null,"ppid":null,"count":42}"#;
        let event = parse_event(line).unwrap();
        assert_eq!(event.kind, "lost");
        assert_eq!(event.count, Some(42));
        assert_eq!(event.pid, None);
        assert_eq!(event.ns_type, None);
    }

    #[test]
    fn parse_event_skips_snapshot() {
        assert!(parse_event(r#"{"schema":"listns.snapshot","namespaces":[]}"#).is_none());
    }

    #[test]
    fn parse_event_skips_invalid_json() {
        assert!(parse_event(r#"{"schema":"listns.event","event":"#).is_none());
    }
}
