"""Fixed facts of the DCASE2025 Stereo SELD task and of the feature front end.

Everything here is a property of the data format or of the method (docs/METHOD.md), not a tunable.
"""

SAMPLE_RATE = 24_000  # Hz
CLIP_SAMPLES = 120_000  # 5 s
N_CHANNELS = 2  # [L, R]
HOP = 480  # 20 ms
WIN = 960  # Hann window length
N_FFT = 1024
N_BINS = N_FFT // 2 + 1  # 513
N_MELS = 64
N_FEAT_FRAMES = 251  # T: centred STFT frames of one clip
N_LABEL_FRAMES = 50  # L: 100 ms label frames
FEAT_PER_LABEL = 5  # feature frames pooled into one label frame
N_CLASSES = 13  # C
N_TRACKS = 3  # K: multi-ACCDOA output tracks
N_ADPIT_SLOTS = 6  # A0 | B0 B1 | C0 C1 C2
MAX_AZIMUTH = 90  # labels are folded to [-90, 90]
# WPE dereverberation (docs/METHOD.md section 2): prediction filter taps and delay in frames, iterations of the
# power estimate; the defaults of textseld.features.wpe.wpe, the feature extraction and its CLI.
WPE_TAPS = 60
WPE_DELAY = 5
WPE_ITERATIONS = 5

# Official class names (DCASE2025 Task 3), index = class id.
CLASS_NAMES = (
    "female speech",
    "male speech",
    "clapping",
    "telephone",
    "laughter",
    "domestic sounds",
    "walk/footsteps",
    "door open/close",
    "music",
    "musical instrument",
    "water tap/faucet",
    "bell",
    "knock",
)

# The words used for each class in ground-truth sentences (docs/METHOD.md section 4).
CLASS_WORDS = (
    "woman",
    "man",
    "clapping",
    "telephone",
    "laughter",
    "household sounds",
    "footsteps",
    "door",
    "music",
    "instrument",
    "water tap",
    "bell",
    "knock",
)

CSV_HEADER = ("frame", "class", "source", "azimuth", "distance", "onscreen")

# Split folder names of the real data and of the synthetic default.
REAL_TRAIN_SPLITS = ("dev-train-tau", "dev-train-sony")
REAL_TEST_SPLITS = ("dev-test-tau", "dev-test-sony")
SYNTH_TRAIN_SPLIT = "dev-train-synth"
SYNTH_TEST_SPLIT = "dev-test-synth"
AUDIO_ROOT = "stereo_dev"
META_ROOT = "metadata_dev"

# Names of the models and of the scoring (docs/METHOD.md sections 5-9): run and system names,
# command-line choices and the checks of every entry point use these; the workflow's
# grid (config `grid`, rules/common.smk) lists the same names.
SOURCES = ("rcc", "beats")  # source (audio) encoders of the tokenizer
IDENTITY = "identity"  # the control: no text encoder, the heads read the tokens (docs/METHOD.md section 5)
TEXTS = ("clip", "bert", IDENTITY)  # frozen text encoders, and the control without one
# the distance term of the ADPIT loss (textseld.losses.adpit_loss)
DISTANCE_LOSSES = ("mse", "relative")
HEAD_NAMES = ("grep", "trep")  # output heads of the finetuned models
PROTOCOLS = ("dcase2025", "strict")  # scoring protocols (textseld.metrics.seld); the first is the main one
AVERAGES = ("macro", "micro")  # class averaging of the scores
# Speech voices of the synthetic dataset: espeak-ng if on PATH (auto), the built-in formant
# synthesiser, or espeak-ng required (textseld.data.synthesis.voice, the CLI's choices).
SPEECH_BACKENDS = ("auto", "formant", "espeak")

# The paper's pretrained text encoders (docs/METHOD.md section 5): the open_clip architecture and
# pretrained tag of the CLIP text tower and the Hugging Face repository of the BERT. The
# defaults of `textseld download-pretrained` and the pretrained presets of
# textseld.models.text_config; the workflow's config names them again (config/*.yaml).
CLIP_ARCH = "ViT-B-16"
CLIP_TAG = "openai"
BERT_REPO = "google/bert_uncased_L-12_H-512_A-8"
