"""The camera path: frames in, digit strings out, without TensorFlow.

``camera`` (frame sources: picamera2, USB, video, images, the demo clip),
``page`` (finding and flattening the sheet in a frame), ``segment`` (digit
glyphs and lines), ``reject`` (the model that drops glyphs that are not
digits), ``reader`` (one frame read), ``runloop`` (the run loop), ``stable``
(settled readings), ``framelog`` (the per-frame log), ``observe`` (the
annotated view, and ``RunObserver``: what follows a run, as ``live/`` does),
``photo_answer`` (the JSON answer of one photo), ``demo`` and ``clutter``
(the generated demo clip and desks), ``photos`` and ``scenes`` (scoring on
real photos and scenes), ``scoring`` lives below.
"""
