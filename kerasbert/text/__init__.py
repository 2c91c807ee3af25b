from kerasbert.text.classifier_preprocessor import ClassifierPreprocessor  # noqa: F401
from kerasbert.text.seeded_mask_generator import SeededMaskGenerator  # noqa: F401
from kerasbert.text.whole_word_mask_generator import WholeWordMaskGenerator  # noqa: F401
from kerasbert.text.vocabulary_coverage import unknown_piece_rate  # noqa: F401
from kerasbert.text.vocabulary_coverage import texts_without_word_pieces  # noqa: F401
