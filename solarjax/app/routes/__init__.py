"""The API's routes: those every dataset has (`table`), and each dataset's own (`sharp`, `aia`)."""
