//! Content policies (`[[content_filters]]`): deny patterns matched against the text of a
//! request's messages, per team, before any upstream is called. A match is answered with the
//! seed's "Contents Filtered" error.

use crate::config::{glob_match, Config, ContentFilter, Team};
use crate::dialect::chat::{message_text, ChatRequest};

/// The first policy of the team whose pattern matches a message, if any.
pub fn check<'c>(
    config: &'c Config,
    team: &Team,
    req: &ChatRequest<'_>,
) -> Option<&'c ContentFilter> {
    let mut applicable = config
        .content_filters
        .iter()
        .filter(|f| f.teams.iter().any(|g| glob_match(g, &team.name)))
        .peekable();
    // Most teams have no policy: then the messages are not even read.
    applicable.peek()?;
    let texts: Vec<String> = req.messages.iter().map(|m| message_text(m.get())).collect();
    applicable
        .find(|f| f.deny.iter().any(|re| texts.iter().any(|t| re.is_match(t))))
        .map(|f| &**f)
}
