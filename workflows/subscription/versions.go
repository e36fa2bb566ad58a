package subscription

// Versioning. A subscription's workflow lives for years, so its code must replay every history it may
// meet. The shape recorded under testdata/ is the baseline (no version markers). From here on:
//
//   - A change to the commands the workflow issues (activities, timers, upserts, their order) goes behind
//     its own workflow.GetVersion(ctx, "<change-id>", workflow.DefaultVersion, 1), read at the branch it
//     guards, not once per run: a run that never reaches the branch records no marker.
//   - Every run continues as new at least every MaxRunAge (30 days), and after each Renew, so a change
//     reaches idle subscriptions within a month. Once every run started before a release has continued
//     (after MaxRunAge, plus the workflow task timeout), the old branch can be removed: replace the
//     GetVersion call by a check that the version is the new one, keeping the change ID reserved.
//   - TestReplayRecordedHistories replays the files in testdata; record new ones with
//     RECORD_HISTORIES=<tag> go test -count=1 ./engine/ -run Lifecycle, and keep the old ones until their
//     branch is removed.
