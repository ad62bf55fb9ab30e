//! The embedded CloudFormation.
//!
//! `template` reads and evaluates templates without I/O: sections, parameters, conditions,
//! rules, the order resources are made in, and the intrinsic functions; `yaml` reads YAML
//! templates with their short-form tags into the JSON form.
//!
//! # LIMITATIONS
//! - `Transform` (SAM, `AWS::Include`, macros) is not served: a template that names one is
//!   refused, saying so. `Fn::ToJsonString` and `Fn::Length` are taken without the
//!   `AWS::LanguageExtensions` transform.
//! - `Fn::GetAZs` gives three zones, `<region>a` to `<region>c`; `Fn::Cidr` divides IPv4 blocks
//!   only.

pub mod template;
pub mod yaml;
