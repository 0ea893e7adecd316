"""Analyses in the full embedding space: coverage gaps, missing concepts, failure slices, clusters,
and the data-quality checks: duplicates and leaks, label errors, outliers, and budgeted sampling;
for detection datasets, predictions matched to ground truth as COCO matches them (:func:`match`).

Each returns a small result object with a ranked table of groups (``.groups()``), a way to turn
any group into a :class:`~dataexplore.Selection` (``.selection(k)``), values to colour a map by
(``.map_values()``) and a plotly chart (``.plot()``). None of this imports the widget; show a
result on a map with ``explorer.show(result)``.
"""

from ..language.thresholds import ConceptThresholds, concept_thresholds
from .clustering import Clusters, clusters
from .concept_coverage import ConceptCoverage, concepts
from .duplicates import Duplicates, duplicates
from .gaps import Coverage, Redundancy, coverage
from .groups import GroupResult, wilson
from .label_errors import LabelErrors, label_errors
from .matching import Matches, match
from .neighbors import knn
from .outliers import Outliers, outliers
from .sampling import Sample, sample
from .slices import FailureSlices, failures

__all__ = ["Clusters", "ConceptCoverage", "Coverage", "Duplicates", "FailureSlices", "GroupResult", "LabelErrors",
           "Matches", "Outliers", "Redundancy", "Sample", "ConceptThresholds", "concept_thresholds", "clusters",
           "concepts", "coverage", "duplicates", "failures", "knn", "label_errors", "match", "outliers", "sample",
           "wilson"]
