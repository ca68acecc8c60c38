/*
 * The ESP32 hardware layer of the MDB link (mdb_hw.h): GPIO bit-banging at 9600 baud, as docs/mdb.md §8 records
 * the open ESP32 readers settling on it (the UART has no 9th bit, RMT was tried and dropped). Receive: a falling
 * edge on the RX pin starts a word; the interrupt handler samples D0 at 1.5 bit times and every bit after it against
 * the edge's timestamp, then queues the word. Transmit: levels from mdb_bits_encode, timed against esp_timer, each
 * word with interrupts held off on this core. The receive interrupt and the link task live on core 1, away from
 * Wi-Fi on core 0, so sampling is not skewed. Needs ESP-IDF (not on the CI machine: compile-checked only in an
 * ESP-IDF build).
 */
#include "../mdb_hw.h"
#include "../mdb_bits.h"
#include "../mdb_link.h"

#include "driver/gpio.h"
#include "esp_attr.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/queue.h"
#include "freertos/task.h"

#define BREAK_CANDIDATE 0xFFFF

static int rx_pin = -1, tx_pin = -1;
static mdb_hw_callbacks callbacks;
static QueueHandle_t words;
static TaskHandle_t task;
static portMUX_TYPE mux = portMUX_INITIALIZER_UNLOCKED;

static inline void IRAM_ATTR wait_until(int64_t t) {
	while (esp_timer_get_time() < t) {
	}
}

static void IRAM_ATTR rx_edge(void *arg) {
	(void)arg;
	int64_t t0 = esp_timer_get_time();
	mdb_bits_rx rx;
	uint16_t word = 0;
	int r = 0;
	mdb_bits_rx_start(&rx);
	/* Sample times in ns from the edge, rounded to µs: 1.5 bits, then one bit apart. */
	for (int i = 0; i < 10 && r == 0; i++) {
		wait_until(t0 + (MDB_BIT_NS * 3 / 2 + (int64_t)MDB_BIT_NS * i) / 1000);
		r = mdb_bits_rx_sample(&rx, gpio_get_level(rx_pin), &word);
	}
	if (r < 0) word = mdb_bits_rx_all_zero(&rx) ? BREAK_CANDIDATE : 0;
	BaseType_t woken = pdFALSE;
	if (r == 1 || word == BREAK_CANDIDATE) xQueueSendFromISR(words, &word, &woken);
	if (woken) portYIELD_FROM_ISR();
}

static void link_task(void *arg) {
	(void)arg;
	uint16_t word;
	for (;;) {
		if (xQueueReceive(words, &word, portMAX_DELAY) != pdTRUE) continue;
		if (word == BREAK_CANDIDATE) {
			/* The line went active for a whole word: a bus reset if it stays so for 100 ms (docs/mdb.md §1). */
			gpio_intr_disable(rx_pin);
			vTaskDelay(pdMS_TO_TICKS(95));
			int held = gpio_get_level(rx_pin) == 0;
			while (gpio_get_level(rx_pin) == 0) vTaskDelay(1);
			gpio_intr_enable(rx_pin);
			if (held) callbacks.on_word(callbacks.ctx, MDB_BREAK);
			continue;
		}
		callbacks.on_word(callbacks.ctx, word);
	}
}

int mdb_hw_open(int rx, int tx, const mdb_hw_callbacks *cb) {
	if (task) return -1;
	rx_pin = rx;
	tx_pin = tx;
	callbacks = *cb;
	words = xQueueCreate(64, sizeof(uint16_t));
	if (!words) return -1;
	gpio_config_t out = { .pin_bit_mask = 1ULL << tx, .mode = GPIO_MODE_OUTPUT };
	gpio_config(&out);
	gpio_set_level(tx_pin, 1);
	gpio_config_t in = { .pin_bit_mask = 1ULL << rx, .mode = GPIO_MODE_INPUT, .pull_up_en = GPIO_PULLUP_ENABLE,
		.intr_type = GPIO_INTR_NEGEDGE };
	gpio_config(&in);
	/* The task, created on core 1, installs nothing itself; the ISR service is installed from this core, so the
	 * interrupt is served where the task runs (call mdb_hw_open from core 1). */
	if (xTaskCreatePinnedToCore(link_task, "mdb", 3072, NULL, configMAX_PRIORITIES - 2, &task, 1) != pdPASS) return -1;
	gpio_install_isr_service(ESP_INTR_FLAG_IRAM);
	gpio_isr_handler_add(rx_pin, rx_edge, NULL);
	return 0;
}

void mdb_hw_send(const uint16_t *w, size_t count) {
	uint8_t levels[MDB_WORD_BITS];
	for (size_t k = 0; k < count; k++) {
		mdb_bits_encode(w[k], levels);
		portENTER_CRITICAL(&mux);
		int64_t t0 = esp_timer_get_time();
		for (int i = 0; i < MDB_WORD_BITS; i++) {
			gpio_set_level(tx_pin, levels[i]);
			wait_until(t0 + ((int64_t)MDB_BIT_NS * (i + 1)) / 1000);
		}
		portEXIT_CRITICAL(&mux);
	}
}

void mdb_hw_close(void) {
	if (!task) return;
	gpio_isr_handler_remove(rx_pin);
	vTaskDelete(task);
	task = NULL;
	vQueueDelete(words);
	words = NULL;
	gpio_set_level(tx_pin, 1);
}
