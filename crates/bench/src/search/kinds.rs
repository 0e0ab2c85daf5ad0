//! The kinds of search measured, each drawing its value from the seeded data.

use statehouse_core::search::ResourceQuery;
use statehouse_core::store::search::MatchMode;

use super::Samples;
use super::data::{AWS, MODULES, Rng};

/// One kind of search, with a value drawn per sample.
pub(super) struct Kind {
    pub(super) label: &'static str,
    pub(super) make: fn(&mut Rng, &Samples) -> ResourceQuery,
}

fn pick(rng: &mut Rng, from: &[String]) -> String {
    if from.is_empty() {
        return "none".into();
    }
    from[rng.below(from.len())].clone()
}

fn prefix_of(s: &str, len: usize) -> String {
    s.chars().take(len).collect()
}

pub(super) fn kinds() -> Vec<Kind> {
    vec![
        Kind {
            label: "`id` exact",
            make: (|r, s| ResourceQuery {
                id: Some(pick(r, &s.ids)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`id` prefix (6 chars)",
            make: (|r, s| ResourceQuery {
                id: Some(prefix_of(&pick(r, &s.ids), 6)),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`arn` exact",
            make: (|r, s| ResourceQuery {
                arn: Some(pick(r, &s.arns)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`arn` prefix (service + account)",
            make: (|r, s| ResourceQuery {
                arn: Some(prefix_of(&pick(r, &s.arns), 30)),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`name_attribute` exact",
            make: (|r, s| ResourceQuery {
                name_attribute: Some(pick(r, &s.names)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`q` exact (any attribute)",
            make: (|r, s| ResourceQuery {
                q: Some(pick(r, &s.names)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`q` prefix (any attribute)",
            make: (|r, s| ResourceQuery {
                q: Some(prefix_of(&pick(r, &s.names), 10)),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`type` exact",
            make: (|r, s| ResourceQuery {
                resource_type: Some(pick(r, &s.types)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`type` prefix `aws_iam`",
            make: (|_, _| ResourceQuery {
                resource_type: Some("aws_iam".into()),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`name` exact",
            make: (|r, s| ResourceQuery {
                name: Some(pick(r, &s.resource_names)),
                ..Default::default()
            }),
        },
        Kind {
            label: "`module` prefix",
            make: (|r, _| ResourceQuery {
                module: Some(format!("module.{}", MODULES[r.below(MODULES.len())])),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`provider` exact (aws, 60 % of rows)",
            make: (|_, _| ResourceQuery {
                provider: Some(AWS.into()),
                ..Default::default()
            }),
        },
        Kind {
            label: "`self_link` prefix",
            make: (|_, _| ResourceQuery {
                self_link: Some("https://www.googleapis.com/compute/v1/projects/acme-prod/".into()),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`mode=data`",
            make: (|_, _| ResourceQuery {
                mode: Some("data".into()),
                ..Default::default()
            }),
        },
        Kind {
            label: "`type` exact + `module` prefix",
            make: (|r, s| ResourceQuery {
                resource_type: Some(pick(r, &s.types)),
                module: Some(format!("module.{}", MODULES[r.below(MODULES.len())])),
                match_mode: MatchMode::Prefix,
                ..Default::default()
            }),
        },
        Kind {
            label: "`id` exact, no match",
            make: (|r, _| ResourceQuery {
                id: Some(format!("i-missing{}", r.hex(8))),
                ..Default::default()
            }),
        },
    ]
}
