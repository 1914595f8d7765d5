//! The semantic keys a theme colours, by screen area (SLA states among them), as typed values:
//! a key the console asks for that does not exist does not compile.

use amal_engine::sla::SlaState;

/// Declares [`ThemeKey`] from one list: each key's variant, its name in theme files and what it
/// colours, so the name table cannot drift from the enum.
macro_rules! theme_keys {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// A semantic colour a theme sets, named in files as `<area>.<name>`. A theme may leave
        /// keys out (the default theme's colour is used); a name not listed here is an error.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ThemeKey {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ThemeKey {
            /// Every key, in the order the theme files list them.
            pub const ALL: &[ThemeKey] = &[$(ThemeKey::$variant,)*];

            /// The key as theme files write it: `sla.ok`, `base.text`, ...
            pub fn name(self) -> &'static str {
                match self {
                    $(ThemeKey::$variant => $name,)*
                }
            }
        }
    };
}

theme_keys! {
    /// Screen background.
    BaseBackground = "base.background",
    /// Ordinary text.
    BaseText = "base.text",
    /// Secondary text.
    BaseDim = "base.dim",
    /// Borders.
    BaseBorder = "base.border",
    /// The border of the focused pane.
    BaseBorderFocus = "base.border_focus",
    /// Pane titles.
    BaseTitle = "base.title",
    /// The selected row's background.
    BaseSelectionBg = "base.selection_bg",
    /// The selected row's text.
    BaseSelectionFg = "base.selection_fg",
    /// Error messages.
    BaseError = "base.error",
    /// Confirmations.
    BaseSuccess = "base.success",
    /// The top bar.
    HeaderBackground = "header.background",
    /// The top bar's text.
    HeaderText = "header.text",
    /// The current screen's tab.
    TabsActive = "tabs.active",
    /// Other tabs.
    TabsInactive = "tabs.inactive",
    /// Keys in the footer and help.
    FooterKey = "footer.key",
    /// Descriptions in the footer and help.
    FooterText = "footer.text",
    /// The connection banner.
    BannerBackground = "banner.background",
    /// The connection banner's text.
    BannerText = "banner.text",
    /// The person's messages.
    TranscriptUser = "transcript.user",
    /// The assistant's replies.
    TranscriptAssistant = "transcript.assistant",
    /// Staff replies.
    TranscriptStaff = "transcript.staff",
    /// System messages.
    TranscriptSystem = "transcript.system",
    /// Decision lines.
    TranscriptDecision = "transcript.decision",
    /// Cited sources.
    TranscriptCitation = "transcript.citation",
    /// Public comments.
    CommentsPublic = "comments.public",
    /// Internal notes.
    CommentsInternal = "comments.internal",
    /// SLA clock within target.
    SlaOk = "sla.ok",
    /// SLA clock past 80% of its target.
    SlaWarning = "sla.warning",
    /// SLA target missed.
    SlaBreached = "sla.breached",
    /// SLA clock standing still.
    SlaPaused = "sla.paused",
    /// Urgent priority.
    PriorityUrgent = "priority.urgent",
    /// High priority.
    PriorityHigh = "priority.high",
    /// Medium priority.
    PriorityMedium = "priority.medium",
    /// Low priority.
    PriorityLow = "priority.low",
    /// First data series.
    ChartPrimary = "chart.primary",
    /// Second data series.
    ChartSecondary = "chart.secondary",
    /// Gauges.
    ChartGauge = "chart.gauge",
}

impl ThemeKey {
    /// How many keys there are.
    pub const COUNT: usize = ThemeKey::ALL.len();

    /// The key a theme file names, if it is one.
    pub fn from_name(name: &str) -> Option<ThemeKey> {
        ThemeKey::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The colour of an SLA clock in this state.
    pub fn sla(state: SlaState) -> ThemeKey {
        match state {
            SlaState::Ok => ThemeKey::SlaOk,
            SlaState::Warning => ThemeKey::SlaWarning,
            SlaState::Breached => ThemeKey::SlaBreached,
        }
    }
}
