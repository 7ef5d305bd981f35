"""Sentence templates for the ground-truth texts (docs/METHOD.md section 4).

Every template holds the three slots `{src}`, `{doa}` and `{dist}` exactly
once, in that order, and ends with a period. The wording is chosen so that
it reads acceptably for one source and, after the plural rules applied by
`textseld.text.sentences` (the nouns in `PLURAL_NOUNS` get an "s" and
", respectively" goes before the final period), for several: no article
directly before a pluralised noun, no verb that must agree with `{src}`
(the subject is "the sound of ...", or the sources are an object), and the
distance slot in the last clause. Templates never start with `{src}`, so no
capitalisation of class words is needed.

The text encoders receive the same template with placeholder tokens in the
slots, always in this (singular) wording: the number of sources must not
leak into the model's input.
"""

from __future__ import annotations

# The paper's four example templates are among them, verbatim: the first, "The sonic
# impression of ...", "The captured audio of ..." and "The acoustic presence of ...". The
# other 46 are this project's: the authors' full set of 50 is not published.
TEMPLATES: tuple[str, ...] = (
    "The sound of {src} comes from direction {doa}, approximately {dist} away.",
    "The sound of {src} is coming from direction {doa}, about {dist} away.",
    "The sound of {src} can be heard from direction {doa}, roughly {dist} distant.",
    "The sound of {src} arrives from direction {doa}, around {dist} away.",
    "The sonic impression of {src} originates from direction {doa}, nearly {dist} distant.",
    "The captured audio of {src} is localized at direction {doa}, about {dist} away.",
    "The sound of {src} is present at direction {doa}, nearly {dist} away.",
    "The noise of {src} comes from direction {doa}, approximately {dist} away.",
    "The noise of {src} is heard from direction {doa}, about {dist} distant.",
    "The audio of {src} comes from direction {doa}, roughly {dist} away.",
    "The audio of {src} reaches the listener from direction {doa}, about {dist} away.",
    "An event of {src} occurs at direction {doa}, approximately {dist} away.",
    "We can hear {src} from direction {doa}, about {dist} away.",
    "We can hear {src} coming from direction {doa}, roughly {dist} distant.",
    "One can hear {src} from direction {doa}, approximately {dist} away.",
    "You can hear {src} from direction {doa}, around {dist} away.",
    "The listener hears {src} from direction {doa}, about {dist} away.",
    "The microphone picks up {src} from direction {doa}, approximately {dist} away.",
    "The recording contains {src} from direction {doa}, roughly {dist} away.",
    "The recording captures {src} coming from direction {doa}, approximately {dist} distant.",
    "The audio clip contains {src} at direction {doa}, about {dist} away.",
    "This scene contains {src} at direction {doa}, approximately {dist} from the listener.",
    "In this scene, the sound of {src} comes from direction {doa}, about {dist} away.",
    "In the recording, the sound of {src} arrives from direction {doa}, roughly {dist} away.",
    "At this moment, the sound of {src} comes from direction {doa}, approximately {dist} away.",
    "Right now, the sound of {src} can be heard from direction {doa}, about {dist} away.",
    "Sound of {src} detected at direction {doa}, approximately {dist} away.",
    "Sound event {src} detected at direction {doa}, about {dist} away.",
    "Detected sound of {src} from direction {doa}, at roughly {dist}.",
    "Detected: {src}, at direction {doa}, approximately {dist} away.",
    "Active sound of {src} at direction {doa}, about {dist} from the microphone.",
    "Sound source: {src}; direction: {doa}; distance: {dist}.",
    "Source: {src}. Direction: {doa}. Distance: {dist}.",
    "The sound of {src} is at azimuth {doa}, approximately {dist} away.",
    "The sound of {src} comes from azimuth {doa}, roughly {dist} distant.",
    "The sound of {src} is heard at angle {doa}, about {dist} away.",
    "The sound of {src} comes from bearing {doa}, approximately {dist} away.",
    "The sound of {src} is positioned at direction {doa}, around {dist} from the listener.",
    "The sound of {src} emerges from direction {doa}, about {dist} away.",
    "The sound of {src} travels from direction {doa}, approximately {dist} away.",
    "The sound of {src} is audible from direction {doa}, roughly {dist} away.",
    "The sound of {src}, from direction {doa}, is approximately {dist} away.",
    "The sound of {src}, heard from direction {doa}, is about {dist} away.",
    "A listener would hear {src} from direction {doa}, approximately {dist} away.",
    "The sound of {src} is perceived from direction {doa}, at about {dist}.",
    "The acoustic presence of {src} is acoustically detected from direction {doa}, approximately {dist} distant.",
    "The scene has the sound of {src} at direction {doa}, about {dist} away.",
    "The sound of {src} is produced at direction {doa}, roughly {dist} from the microphone.",
    "The sound of {src} is occurring at direction {doa}, approximately {dist} away.",
    "The sound of {src} is emitted from direction {doa}, nearly {dist} away.",
)

# Sentences for frames without any event; render_sentence picks template_id % 10.
NO_SOUND: tuple[str, ...] = (
    "No audible sources are detected in the environment.",
    "There is no sound event in this scene.",
    "Silence: no sound source is active.",
    "No sound events can be heard.",
    "The scene contains no active sound sources.",
    "Nothing can be heard in the environment.",
    "No sound is coming from any direction.",
    "The recording contains only background noise.",
    "No target sound events are present.",
    "All sound sources are silent at this moment.",
)

# Nouns that take the plural "s" in a template when a frame has 2+ sources.
PLURAL_NOUNS: tuple[str, ...] = ("direction", "azimuth", "angle", "bearing", "distance", "source")

N_TEMPLATES = len(TEMPLATES)
N_NO_SOUND = len(NO_SOUND)
