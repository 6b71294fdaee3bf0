"""RAPICREDIT's material: two policy documents (written for this example), the questions
clients ask, the semantic dictionary, field definitions and the risk model's outputs."""

POLICIES = {
    "politica_prestamos.md": """# Política de préstamos personales

RAPICREDIT otorga préstamos personales desde 500.000 hasta 20.000.000 de pesos, con plazos de
6 a 48 meses. La solicitud se responde en un máximo de 24 horas hábiles.

## Requisitos

El solicitante debe ser mayor de edad, presentar su cédula vigente y demostrar ingresos
mensuales de al menos un salario mínimo. Los trabajadores independientes presentan los
extractos bancarios de los últimos tres meses.

## Tasa de interés

La tasa de interés es fija durante todo el préstamo y se informa antes de firmar. El cliente
puede pagar anticipadamente sin penalidad; los intereses se recalculan sobre el saldo.
""",
    "politica_cobranza.md": """# Política de cobranza y mora

Una cuota que no se paga en su fecha de vencimiento entra en mora desde el día siguiente.
Los intereses moratorios se cobran por cada día de atraso, a la tasa máxima permitida.

## Acuerdos de pago

Con más de 30 días de mora, el cliente puede pedir un acuerdo de pago: se refinancia el saldo
en nuevas cuotas y se suspende el cobro de intereses moratorios mientras el acuerdo se cumpla.

## Reportes

Después de 60 días de mora, RAPICREDIT reporta la obligación a las centrales de riesgo,
previo aviso al cliente con 20 días de anticipación.
""",
}

# (client, loan, question, rating 1-5 given by the client, thumbs)
CONVERSATIONS = [
    ("C-101", "L-456", "¿Cuáles son los requisitos para pedir préstamos?", 5, "up"),
    ("C-101", "L-456", "¿Puedo pagar mi préstamo antes de tiempo?", 5, "up"),
    ("C-202", "L-789", "Estoy atrasado con mis cuotas, ¿qué intereses me cobran?", 4, "up"),
    ("C-202", "L-789", "¿Cuándo me reportan a las centrales de riesgo?", 2, "down"),
    ("C-303", "L-990", "¿En cuánto tiempo responden una solicitud?", 5, "up"),
]

TERMS = [
    {"word": "cédula", "table_name": "clientes", "field_name": "cedula", "category": "identificacion",
     "synonyms": ["documento", "identificación"], "definition": "Número del documento de identidad del cliente."},
    {"word": "saldo", "table_name": "prestamos", "field_name": "saldo_pendiente", "category": "prestamos",
     "synonyms": ["lo que debe", "deuda"], "definition": "Monto que el cliente todavía debe del préstamo."},
    {"word": "mora", "table_name": "cuotas", "field_name": "dias_mora", "category": "pagos",
     "synonyms": ["atraso", "retraso"], "definition": "Días de retraso de una cuota vencida y no pagada."},
]

FIELDS = [
    ("prestamos", "tasa_interes", "Tasa de interés anual fija del préstamo, en porcentaje."),
    ("prestamos", "plazo_meses", "Número de cuotas mensuales pactadas (6 a 48)."),
    ("cuotas", "dias_mora", "Días transcurridos desde el vencimiento de una cuota no pagada."),
]

# The default-risk model's outputs: (loan, score, factors, defaulted?)
PREDICTIONS = [
    ("L-456", 0.12, {"ingresos": "altos", "historial": "bueno"}, False),
    ("L-789", 0.81, {"ingresos": "bajos", "cuotas_en_mora": 3}, True),
    ("L-990", 0.35, {"ingresos": "medios", "historial": "nuevo"}, False),
    ("L-991", 0.66, {"ingresos": "medios", "cuotas_en_mora": 1}, True),
    ("L-992", 0.22, {"ingresos": "altos", "historial": "bueno"}, False),
    ("L-993", 0.58, {"ingresos": "bajos", "historial": "nuevo"}, False),
]
