//! Pulumi resource URNs: `urn:pulumi:<stack>::<project>::<qualified type>::<name>`, where the
//! qualified type is the resource's type token after its parents' types, joined by `$`
//! (`my:index:Component$aws:s3/bucket:Bucket`), and the name may itself contain `::`.

/// What every URN starts with.
pub const URN_PREFIX: &str = "urn:pulumi:";

/// The type of the root resource every stack has; its outputs are the stack's outputs.
pub const STACK_TYPE: &str = "pulumi:pulumi:Stack";

/// The parts of a URN statehouse shows and indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UrnParts<'a> {
    pub stack: &'a str,
    pub project: &'a str,
    /// The parents' types and the resource's own, joined by `$`.
    pub qualified_type: &'a str,
    /// Everything after the third `::`, as Pulumi reads it.
    pub name: &'a str,
}

/// The parts of `urn`, `None` when it is not a Pulumi URN.
pub fn parse(urn: &str) -> Option<UrnParts<'_>> {
    let rest = urn.strip_prefix(URN_PREFIX)?;
    let mut parts = rest.splitn(4, "::");
    Some(UrnParts {
        stack: parts.next()?,
        project: parts.next()?,
        qualified_type: parts.next()?,
        name: parts.next()?,
    })
}

/// The resource name part of `urn` (its last part); the whole text when it is not a URN, so
/// a malformed URN is still shown and searchable by something.
pub fn name_of(urn: &str) -> &str {
    parse(urn).map_or(urn, |p| p.name)
}

/// A provider reference (`<provider URN>::<provider id>`) without its id: the provider
/// resource's URN. The id is the part after the last `::` (URNs may contain `::` in the name,
/// ids never do).
pub fn provider_urn(reference: &str) -> &str {
    reference
        .rsplit_once("::")
        .map_or(reference, |(urn, _)| urn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_of_urns() {
        let urn = "urn:pulumi:dev::shop::my:index:Site$aws:s3/bucket:Bucket::assets";
        assert_eq!(
            parse(urn),
            Some(UrnParts {
                stack: "dev",
                project: "shop",
                qualified_type: "my:index:Site$aws:s3/bucket:Bucket",
                name: "assets",
            })
        );
        assert_eq!(name_of("urn:pulumi:dev::shop::t:m:T::a::b"), "a::b");
        assert_eq!(name_of("not-a-urn"), "not-a-urn");
        assert_eq!(parse("urn:pulumi:dev::shop::t"), None);
    }

    #[test]
    fn provider_references_lose_their_id() {
        assert_eq!(
            provider_urn(
                "urn:pulumi:dev::shop::pulumi:providers:aws::default_6_0_0::04da6b54-80e4-46f7-96ec-b56ff0331ba9"
            ),
            "urn:pulumi:dev::shop::pulumi:providers:aws::default_6_0_0"
        );
        assert_eq!(provider_urn("plain"), "plain");
    }
}
