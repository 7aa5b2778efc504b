"""Quick mode's packing with the real embedding model: the document a question is about keeps its places.

Asked "¿Cuánta memoria necesita el modelo gpt-oss-120b?" over a Spanish article among other files, the old
prompt (the top 6 chunks, at most 3 of one document) gave places 4-6 to unrelated files (similarity under
0.4) and left out the article's chunk with the answer ("60 GB a 80 GB"), 8th among its chunks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.pipeline import Ingester
from rag.answer.ask import Answer, Finished, ask
from rag.index.index import Index, open_index
from rag.index.local_model import SentenceTransformerEmbedder
from rag.settings import ContextSettings, Settings
from tests.fakes import ScriptedChat

pytestmark = pytest.mark.slow

QUESTION = "¿Cuánta memoria necesita el modelo gpt-oss-120b?"
ANSWER_CHUNK = "60 GB a 80 GB"

ARTICLE = "\n\n".join([
    (
        "# gpt-oss: los modelos abiertos de OpenAI"
    ),
    (
        "OpenAI publicó en agosto de 2025 dos modelos de lenguaje con pesos abiertos, gpt-oss-120b y gpt-"
        "oss-20b, bajo la licencia Apache 2.0. Es la primera vez desde GPT-2 que la empresa comparte los "
        "pesos de un modelo, y cualquiera puede descargarlos, modificarlos y usarlos en sus propios productos"
        " sin pagar por cada consulta."
    ),
    (
        "Los dos modelos usan una arquitectura de mezcla de expertos. El modelo gpt-oss-120b tiene unos 117 "
        "000 millones de parámetros en total, pero solo activa alrededor de 5100 millones por cada token, lo "
        "que lo hace mucho más rápido que un modelo denso del mismo tamaño. El modelo gpt-oss-20b tiene 21 "
        "000 millones de parámetros y activa 3600 millones por token."
    ),
    (
        "Ambos modelos razonan antes de responder, y el nivel de razonamiento se puede elegir: bajo, medio o "
        "alto. Con un esfuerzo alto el modelo piensa durante más tiempo y acierta más en problemas de "
        "matemáticas y programación, a cambio de tardar más en dar la respuesta final."
    ),
    (
        "El formato de conversación se llama harmony. Separa el razonamiento, que el usuario no debería ver, "
        "de la respuesta final, y define canales para las llamadas a herramientas. Los modelos fueron "
        "entrenados para usar un navegador y un intérprete de Python, y para seguir las instrucciones del "
        "desarrollador."
    ),
    (
        "En las pruebas publicadas por OpenAI, el modelo gpt-oss-120b obtiene resultados parecidos a o4-mini "
        "en competiciones de programación, preguntas de salud y problemas de matemáticas, mientras que gpt-"
        "oss-20b se acerca a o3-mini. Las cifras dependen mucho del nivel de razonamiento elegido."
    ),
    (
        "Los pesos se distribuyen ya cuantizados en el formato MXFP4, que guarda cada parámetro de los "
        "expertos en algo más de cuatro bits. Con esa cuantización, la versión grande se ejecuta en una sola "
        "tarjeta gráfica de 60 GB a 80 GB, como una H100, y la pequeña en unos 16 GB, por lo que funciona en "
        "muchos portátiles."
    ),
    (
        "Para usar los modelos en casa lo más sencillo es Ollama, que descarga el modelo con una sola orden y"
        " lo sirve en el puerto 11434. También funcionan con vLLM, llama.cpp y LM Studio, y con cualquier "
        "servidor compatible con la API de OpenAI."
    ),
    (
        "La ventana de contexto de los dos modelos es de 131 072 tokens, suficiente para leer documentos "
        "largos enteros. En la práctica muchas personas la reducen a 16 384 o 32 768 tokens para ahorrar "
        "memoria y obtener la primera palabra de la respuesta antes."
    ),
    (
        "OpenAI publicó además una tarjeta del modelo con las evaluaciones de seguridad. Según la empresa, ni"
        " siquiera una versión ajustada a propósito para ello alcanzó un nivel de capacidad alto en los "
        "ámbitos de riesgo biológico o de ciberseguridad."
    ),
    (
        "El modelo gpt-oss-120b no guarda memoria de una conversación a otra: cada consulta empieza de cero, "
        "y la aplicación que lo usa decide qué parte de la conversación anterior le vuelve a enviar. El "
        "modelo gpt-oss-120b tampoco necesita conexión a internet una vez descargado."
    ),
    (
        "La comunidad recibió los modelos con interés. En pocos días aparecieron versiones ajustadas para "
        "otros idiomas, integraciones con editores de código y guías para ejecutarlos en equipos Mac con "
        "chips de Apple.\n"
    ),
])

OTHERS = {
    "huerto.md": (
        "# El huerto en otoño\n\nEn otoño conviene sembrar habas, ajos y guisantes. Las hojas caídas sirven de "
        "abono si se dejan compostar durante el invierno. Riega por la mañana y protege las plantas jóvenes "
        "de las heladas con una manta térmica.\n\nLos membrillos maduran en octubre y se recogen cuando pierden"
        " la pelusa.\n"
    ),
    "receta.md": (
        "# Tortilla de patatas\n\nPela y corta cuatro patatas en láminas finas. Fríelas a fuego lento en "
        "abundante aceite con media cebolla. Bate seis huevos, mezcla con las patatas escurridas y cuaja la "
        "tortilla por los dos lados en una sartén.\n"
    ),
    "futbol.txt": (
        "The club won the regional league in 1998 and again in 2004. Its stadium holds 12,000 spectators and "
        "was renovated in 2015. Training sessions take place on Tuesdays and Thursdays.\n"
    ),
    "viaje.md": (
        "# Viaje a Lisboa\n\nEl tranvía 28 recorre los barrios antiguos de Lisboa. Reserva una mesa para cenar "
        "en Alfama y escucha fado. El museo de los azulejos abre de martes a domingo.\n"
    ),
    "garden.md": (
        "# Garden notes\n\nThe roof garden grows quinces and medlars. Watering happens at dawn, every second "
        "day. Compost is turned once a month.\n"
    ),
    "bici.md": (
        "# Mantenimiento de la bicicleta\n\nLimpia la cadena cada 300 kilómetros y engrásala con aceite fino. "
        "Revisa la presión de los neumáticos cada semana y ajusta los frenos cuando las pastillas se "
        "desgasten.\n"
    ),
}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, real_embedder: SentenceTransformerEmbedder
            ) -> Iterator[tuple[Index, Settings]]:
    root = tmp_path_factory.mktemp("spanish")
    docs = root / "docs"
    docs.mkdir()
    # Not named after the model: a file name holding the question's words would be searched first, uncapped.
    (docs / "modelos-abiertos.md").write_text(ARTICLE, encoding="utf-8")
    for name, text in OTHERS.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = Settings(data_dir=root / "data")
    index = open_index(settings.data_dir, real_embedder)
    Ingester(index, settings).ingest_paths([docs])
    yield index, settings
    index.close()


def answer(index: Index, settings: Settings) -> Answer:
    chat = ScriptedChat()
    chat.enqueue("Entre 60 GB y 80 GB [1].")
    [finished] = [event for event in ask(QUESTION, index, chat, settings, mode="quick") if isinstance(event, Finished)]
    return finished.answer


def test_the_chunk_with_the_answer_is_among_the_sources(library: tuple[Index, Settings]) -> None:
    index, settings = library
    result = answer(index, settings)
    assert result.found_relevant
    assert any(ANSWER_CHUNK in passage.text for passage in result.passages)
    # The article's neighbouring chunks are read as whole passages, its overlap not repeated.
    article = [p for p in result.passages if Path(p.path).name == "modelos-abiertos.md"]
    document = index.catalog.document_by_path(article[0].path)
    assert document is not None and len(article) < len(index.catalog.chunks_of(document.id))
    joined = "\n".join(p.text for p in article)
    assert joined.count("Las cifras dependen mucho del nivel de razonamiento elegido.") == 1


def test_unrelated_files_never_take_the_place_of_the_articles_passages(library: tuple[Index, Settings]) -> None:
    # A budget too small for the whole article (about 490 tokens; it takes 700): every passage given is the article's.
    index, settings = library
    small = settings.model_copy(update={"context": ContextSettings(share=0.03)})
    result = answer(index, small)
    names = {Path(p.path).name for p in result.passages}
    assert names == {"modelos-abiertos.md"}
