//! Property tests ("fuzzing") over everything that parses what a client or an artifact sends:
//! zip archives, query forms, pagination tokens, JSON checked against a service model, pipeline
//! declarations. Each must answer every input, however malformed, without panicking, and the
//! zip extraction must never write beyond its limits.
//!
//! `cargo test --lib fuzz` runs them with 256 cases each; `PROPTEST_CASES=100000 cargo test
//! --release --lib fuzz` runs them for longer (docs/benchmarks.md records such a run).

#[cfg(test)]
mod tests {
    use std::io::Write;

    use proptest::prelude::*;
    use serde_json::Value;

    use crate::codepipeline::actions::archive::{unpack, ZipLimits};

    /// A small valid zip to mutate.
    fn seed_zip() -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, content) in [
            ("a.txt", &b"hello hello hello"[..]),
            ("d/b.bin", &[0u8; 4096][..]),
        ] {
            writer.start_file(name, options).unwrap();
            writer.write_all(content).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    /// Any JSON value, nested a few levels.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            ".{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
                prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn mutated_zips_never_panic_nor_exceed_their_limits(
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        ) {
            let mut zip = seed_zip();
            for (at, byte) in flips {
                let i = at.index(zip.len());
                zip[i] = byte;
            }
            let dir = tempfile::tempdir().unwrap();
            let limits = ZipLimits { max_entries: 16, max_bytes: 64 << 10, max_ratio: 100 };
            if let Ok(files) = unpack(&zip, "fuzz", dir.path(), &limits) {
                let total: u64 = files
                    .iter()
                    .map(|f| std::fs::metadata(&f.file).map_or(0, |m| m.len()))
                    .sum();
                prop_assert!(total <= limits.max_bytes);
                for f in files {
                    prop_assert!(f.file.starts_with(dir.path()));
                }
            }
        }

        #[test]
        fn random_bytes_are_no_zip(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            let _ = unpack(&bytes, "fuzz", dir.path(), &ZipLimits::default());
        }

        #[test]
        fn query_forms_parse_whatever_comes(text in ".{0,200}") {
            let params = crate::aws::query::parse_form(&text);
            for (k, v) in &params {
                let encoded = format!("{}={}", crate::aws::query::encode(k), crate::aws::query::encode(v));
                let again = crate::aws::query::parse_form(&encoded);
                prop_assert_eq!(again.get(k), Some(v));
            }
        }

        #[test]
        fn pagination_tokens_round_trip_and_others_are_refused(last in ".{0,64}", junk in ".{0,64}") {
            prop_assert_eq!(crate::aws::pagination::decode(&crate::aws::pagination::encode(&last)), Some(last));
            let _ = crate::aws::pagination::decode(&junk);
        }

        #[test]
        fn any_json_is_checked_against_the_model_without_panicking(input in json_value()) {
            let model = crate::codepipeline::model();
            for op in model.operations() {
                let _ = model.validate_input(op, &input);
            }
            let codebuild = crate::codebuild::model();
            for op in codebuild.operations() {
                let _ = codebuild.validate_input(op, &input);
            }
        }

        #[test]
        fn any_cbor_is_read_or_refused_and_json_round_trips_through_cbor(
            bytes in prop::collection::vec(any::<u8>(), 0..256),
            input in json_value(),
        ) {
            if let Ok(value) = ciborium::de::from_reader::<ciborium::Value, _>(&bytes[..]) {
                let _ = crate::aws::shapes::cbor_to_json(value);
            }
            // Without a shape, a value goes to CBOR and back as it was (nulls in maps aside).
            let shapes = crate::aws::shapes::Shapes::parse(r#"{"shapes": {}}"#);
            let cbor = shapes.to_cbor("None", &input);
            let encoded = crate::aws::shapes::encode(&cbor);
            let decoded: ciborium::Value = ciborium::de::from_reader(&encoded[..]).unwrap();
            prop_assert!(crate::aws::shapes::cbor_to_json(decoded).is_ok());
        }

        #[test]
        fn any_query_form_is_read_for_every_cloudwatch_input(text in "[A-Za-z.=&0-9]{0,200}") {
            let params = crate::aws::query::parse_form(&text);
            let shapes = crate::aws::shapes::Shapes::parse(include_str!("../models/monitoring-2010-08-01.json"));
            for op in ["PutMetricAlarm", "DescribeAlarms", "SetAlarmState", "DeleteAlarms"] {
                let _ = shapes.from_query(shapes.input(op).unwrap(), &params);
            }
        }

        #[test]
        fn any_json_is_read_as_a_declaration_or_refused(input in json_value()) {
            if let Ok(declaration) = crate::codepipeline::model::Declaration::from_value(&input) {
                let _ = declaration.to_value();
            }
        }
    }
}
