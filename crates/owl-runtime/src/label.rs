//! A process's label: the kind of process it is, shown in the process table
//! and counted per label. Processes of one kind share it: a fixed text costs
//! nothing, and a text made at run time is shared by reference, so spawning
//! a million processes with the same label copies it no time.
//!
//! A label is two words, as a `&str` is: the shared text sits behind one
//! thin pointer (`Arc<Box<str>>`, one more hop than `Arc<str>`), which lets
//! the compiler tell the two kinds apart without a third word — every
//! process cell holds one.

use std::borrow::Cow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A process label (see [`SpawnOptions::label`](crate::SpawnOptions::label)).
/// Cheap to clone; compares and prints as its text.
///
/// ```
/// use std::sync::Arc;
/// use owl_runtime::{Label, Runtime, SpawnOptions};
///
/// // Made once at run time, then shared by every process spawned with it.
/// let label = Label::from(format!("sandbox {} v{}", "math", 2));
/// let rt = Runtime::new(Default::default()).unwrap();
/// let node = rt.node();
/// let pid = node.spawn_opts(SpawnOptions::new().label(label.clone()), |mut p| async move {
///     p.recv::<()>().await
/// });
/// assert_eq!(node.info(&pid).unwrap().label, "sandbox math v2");
/// assert_eq!(label, "sandbox math v2");
/// ```
#[derive(Clone)]
pub struct Label(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<Box<str>>),
}

impl Label {
    /// The label's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Label {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&'static str> for Label {
    fn from(s: &'static str) -> Label {
        Label(Repr::Static(s))
    }
}

impl From<String> for Label {
    fn from(s: String) -> Label {
        Label(Repr::Shared(Arc::new(s.into_boxed_str())))
    }
}

impl From<Arc<str>> for Label {
    fn from(s: Arc<str>) -> Label {
        Label(Repr::Shared(Arc::new(Box::from(&*s))))
    }
}

impl From<Cow<'static, str>> for Label {
    fn from(s: Cow<'static, str>) -> Label {
        match s {
            Cow::Borrowed(s) => s.into(),
            Cow::Owned(s) => s.into(),
        }
    }
}

impl PartialEq for Label {
    fn eq(&self, other: &Label) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Label {}

impl PartialEq<str> for Label {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Label {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every process cell holds a label: it stays two words.
    #[test]
    fn a_label_is_two_words() {
        assert_eq!(
            std::mem::size_of::<Label>(),
            2 * std::mem::size_of::<usize>()
        );
        let shared = Label::from(String::from("made at run time"));
        assert_eq!(shared.clone(), "made at run time");
        assert_eq!(Label::from(Arc::<str>::from("arc")), "arc");
        assert_eq!(Label::from("fixed"), "fixed");
    }
}
