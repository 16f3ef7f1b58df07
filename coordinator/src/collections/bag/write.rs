//! `to_textfiles`: one text file per partition, with the guarantees of `to_parquet`
//! (deterministic part names, each part written whole, `_SUCCESS` written last).

use super::Bag;
use super::lower::{Target, lower};
use crate::collections::dataframe::WriteSummary;
use crate::error::{Error, Result};
use crate::events::Events;
use crate::run::results;
use shoal_protocol::PartFormat;

impl Bag {
    /// Writes one text file per partition under `location` (`part-00000.txt`, or
    /// `part-00000.txt.gz` when `gzip`): a string item as its text, any other as JSON, one per
    /// line; `_SUCCESS` last.
    pub async fn to_textfiles(&self, location: &str, gzip: bool) -> Result<WriteSummary> {
        self.to_textfiles_with(location, gzip, Events::new()).await
    }

    /// [`to_textfiles`](Self::to_textfiles), publishing the run's events.
    pub async fn to_textfiles_with(
        &self,
        location: &str,
        gzip: bool,
        events: Events,
    ) -> Result<WriteSummary> {
        let storage = self.client.storage();
        let dir = storage.resolve(location)?;
        if storage.head(location).await.is_ok_and(|o| o.size > 0) {
            return Err(Error::Invalid(format!(
                "{location}: is a file; to_textfiles writes a folder of parts"
            )));
        }
        let format = if gzip { PartFormat::TextGzip } else { PartFormat::Text };
        let graph = lower(
            &self.plan,
            &Target::Parts { url: dir.url.clone(), format },
            None,
            super::lower_items_schema(),
        )?;
        results::write_parts(&self.client, std::sync::Arc::new(graph), &self.modules, &dir.url, events).await
    }
}
