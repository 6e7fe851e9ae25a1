//! An error and its causes as one line, for messages that cross the plugin boundary.
//!
//! [`PluginError`](crate::PluginError) carries text, not a `source()` chain, so a connector
//! flattens its error before converting it: `cannot write to /logs/x.log: No space left on device`.

use std::error::Error;

/// `error` followed by each of its causes, joined with `": "`.
///
/// A cause whose text the line already ends with is left out, so an error that prints its
/// source itself (`#[error("... {0}")]` on a `#[source]`) does not show it twice.
///
/// ```
/// use logrelay_plugin_api::error_chain;
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("cannot open /logs/x.log")]
/// struct Open(#[source] std::io::Error);
///
/// let e = Open(std::io::Error::other("permission denied"));
/// assert_eq!(error_chain(&e), "cannot open /logs/x.log: permission denied");
/// ```
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot rotate /logs/a.log")]
        Rotate(#[source] Middle),
        #[error("cannot connect: {0}")]
        Repeats(#[source] std::io::Error),
        #[error("no cause")]
        Alone,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot rename")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn joins_every_cause_once() {
        let e = Outer::Rotate(Middle(std::io::Error::other("disk full")));
        assert_eq!(
            error_chain(&e),
            "cannot rotate /logs/a.log: cannot rename: disk full"
        );
        let e = Outer::Repeats(std::io::Error::other("refused"));
        assert_eq!(error_chain(&e), "cannot connect: refused");
        assert_eq!(error_chain(&Outer::Alone), "no cause");
    }
}
