//! Which of Tribler's two REST spellings a listing is rendered in.

/// Which API spelling to render: the PyPI build's field order or the release's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    PyPi,
    Release,
}
