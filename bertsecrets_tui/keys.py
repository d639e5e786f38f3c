"""The screens and the keys that reach them, as data: the app's bindings and the nav bar are made from it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    """One screen of the browser: its mode name, the key that opens it, its title (and a short one for narrow bars)."""

    mode: str
    key: str
    title: str
    about: str
    short: str = ""

    @property
    def brief(self) -> str:
        return self.short or self.title


PLACES = (
    Place("runs", "r", "Runs", "every task and run in the store; Enter opens a run's heads"),
    Place("tasks", "k", "Tasks", "the paper's claims across tasks and seeds with verdicts; cross-task tables; head "
          "effects per task"),
    Place("heads", "g", "Grid", "layers x heads coloured by a statistic, the head's numbers beside"),
    Place("map", "m", "Map", "one head on one input: pretrained, fine-tuned, difference"),
    Place("model", "o", "Model", "all heads of one input as thumbnails"),
    Place("families", "i", "Family", "head families: heads placed by how alike their maps are (JS distance), "
          "clustered", "Fa"),
    Place("sentence", "w", "Words", "the input's text coloured by the attention one token gives or gets"),
    Place("label", "l", "Label", "give pattern classes to sampled maps (keys 1-5)"),
    Place("features", "f", "Features", "attention to nouns, verbs, [CLS], [SEP]... per head", "Feat"),
    Place("ablation", "a", "Ablation", "disabling heads and layers; Table 1", "Abl"),
    Place("sql", "s", "SQL", "read-only SQL on the catalog"),
)
