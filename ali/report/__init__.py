"""Presentation: report.html of a run or a study (pages, with its HTML pieces in markup), the
training curves, the study and toy comparison figures, and the published figures set beside ours
(reference). It shows what ali.evaluation measured and never measures anything itself."""
