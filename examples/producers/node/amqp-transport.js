// A pino transport that publishes each log line to logrelay's exchange through amqplib.
//
//   const transport = pino.transport({
//     target: require.resolve('./amqp-transport.js'),
//     options: { url: 'amqp://guest:guest@127.0.0.1:5672/%2f', exchange: 'logs', routingKey: 'shop.api' },
//   })
//   const logger = pino(transport)
//
// pino's line is sent as it is (logrelay reads `time`, `level`, `name`, `msg`; `err` with its
// stack and every other field are kept as attributes), persistent, on a confirm channel whose
// confirms are awaited before the transport closes.
'use strict'

const build = require('pino-abstract-transport')
const amqp = require('amqplib')

module.exports = async function (opts) {
  const connection = await amqp.connect(opts.url || 'amqp://guest:guest@127.0.0.1:5672/%2f')
  const channel = await connection.createConfirmChannel()
  const exchange = opts.exchange || 'logs'
  const routingKey = opts.routingKey || ''
  return build(async function (source) {
    for await (const line of source) {
      const ok = channel.publish(exchange, routingKey, Buffer.from(line), {
        persistent: true,
        contentType: 'application/json'
      })
      if (!ok) await new Promise((resolve) => channel.once('drain', resolve))
    }
  }, {
    parse: 'lines',
    async close () {
      await channel.waitForConfirms()
      await connection.close()
    }
  })
}
