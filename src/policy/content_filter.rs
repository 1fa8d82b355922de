//! Content policies (`[[content_filters]]`): deny patterns matched against the text of a
//! request's messages, per team, before any upstream is called. A match is answered with the
//! "Contents Filtered" error of the chat API.

use crate::config::{Config, ContentFilter, Team};

/// The first policy of the team whose pattern matches one of the request's `texts` (its system
/// prompt and messages, in whatever dialect), if any.
pub fn check<'c>(
    config: &'c Config,
    team: &Team,
    texts: impl FnOnce() -> Vec<String>,
) -> Option<&'c ContentFilter> {
    let mut applicable = config
        .content_filters
        .iter()
        .filter(|f| f.teams.matches(&team.name))
        .peekable();
    // Most teams have no policy: then the messages are not even read.
    applicable.peek()?;
    let texts = texts();
    applicable
        .find(|f| f.deny.iter().any(|re| texts.iter().any(|t| re.is_match(t))))
        .map(|f| &**f)
}
