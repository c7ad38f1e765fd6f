//! Helpers of the save path tests (and of the session comparison's).

use std::collections::BTreeMap;

use super::{Ini, StoreSpec, parse_save_path};

pub(crate) fn spec(handler: &str, p: &str) -> StoreSpec {
    parse_save_path(handler, p).unwrap()
}

pub(crate) fn ini(pairs: &[(&str, &str)]) -> Ini {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), Some((*v).to_string())))
        .collect()
}

pub(crate) fn servers(spec: &StoreSpec) -> Vec<String> {
    spec.servers.iter().map(ToString::to_string).collect()
}

pub(crate) fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}
